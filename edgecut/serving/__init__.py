"""Shipping it: an artifact turned into what a serving stack loads, none of it with torch. A Triton Inference Server
model repository (deploy, `edgecut deploy --triton`); a static page that classifies in the browser with
onnxruntime-web (web, with the page itself in web_template/); ONNX Runtime Mobile's ORT format for Android and iOS
(mobile); each written in a partial directory and renamed when complete, from an artifact that passes check's
integrity checks. And batch prediction in Ray Data, one `ArtifactPredictor` per worker (ray_data).
"""
