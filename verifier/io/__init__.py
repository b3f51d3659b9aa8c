"""Reading and replaying: ONNX files into a ``Network`` (``onnx``), spec files into a ``Spec``
(``vnnlib``, ``toml_spec``, ``constraints``, ``spec_file``) and onnxruntime replay of candidate
counterexamples (``replay``). Depends only on the core modules; heavy libraries (onnx,
onnxruntime) are imported inside functions."""
