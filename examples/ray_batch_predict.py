"""Classify a large CSV or JSONL file with an edgecut artifact in Ray Data, one ONNX Runtime session per worker.

    python examples/ray_batch_predict.py ARTIFACT reviews.csv labelled/ --workers 4
    python examples/ray_batch_predict.py ARTIFACT reviews.jsonl labelled/ --address auto  # an existing cluster

Writes Parquet files into the output directory: every input column, plus `predicted`, `score` and one
`score_<label>` column per class (the label and scores `edgecut predict` gives each text). On a cluster, the
artifact and the input must be on a path every node can read (or an object store URI Ray Data reads).
Needs `pip install 'edgecut[cpu,ray]'`; no torch.
"""

from __future__ import annotations

import argparse
import os


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", help="an artifact directory (edgecut export -o)")
    parser.add_argument("input", help="a .csv, .jsonl or .parquet file (or directory) with a text column")
    parser.add_argument("output", help="directory for the Parquet output")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--workers", type=int, default=2, help="predictor actors (one session each)")
    # Reading and writing need CPUs too: predictors that hold every CPU of the cluster stall the dataset.
    parser.add_argument("--cpus-per-worker", type=float, default=0.5, help="CPUs Ray reserves per predictor")
    parser.add_argument("--batch-size", type=int, default=256, help="rows per Ray Data batch")
    parser.add_argument("--address", default=None, help="a Ray cluster to join (default: a local Ray)")
    args = parser.parse_args(argv)

    if args.address is None:  # a local Ray: loopback only, no dashboard
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    from edgecut.serving.ray_data import ArtifactPredictor

    if args.address is None:
        ray.init(include_dashboard=False, object_store_memory=256 * 1024**2, log_to_driver=False)
    else:
        ray.init(address=args.address, log_to_driver=False)
    try:
        read = {".csv": ray.data.read_csv, ".jsonl": ray.data.read_json, ".json": ray.data.read_json}
        reader = read.get(os.path.splitext(args.input)[1].lower(), ray.data.read_parquet)
        labelled = reader(args.input).map_batches(
            ArtifactPredictor,
            fn_constructor_args=(os.path.abspath(args.artifact),),
            fn_constructor_kwargs={"text_column": args.text_column},
            concurrency=args.workers,
            num_cpus=args.cpus_per_worker,
            batch_size=args.batch_size,
        )
        labelled.write_parquet(os.path.abspath(args.output))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
