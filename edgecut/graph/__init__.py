"""Making the graph: the fine-tuned torch classifier as an ONNX graph shown to compute the same numbers. The export
with torch.onnx (exporter); the parity policy every comparison of logits uses (parity); a target's offline
optimisation passes, each kept only where parity holds (optimize); int8 and fp16 graphs and the accuracy-aware
choice among them (quantize, precision); accuracy and latency on ONNX Runtime (validate); and `model_text.onnx`, the
graph that takes raw text because it holds the prompt and the tokenizer (text_graph).
"""
