{
  "target_defaults": {
    "include_dirs": ["<!@(node -p \"require('node-addon-api').include\")", "/usr/include/x86_64-linux-gnu/openblas-pthread", "/usr/include/openblas"],
    "dependencies": ["<!(node -p \"require('node-addon-api').gyp\")"],
    "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
    "cflags_cc": ["-O3", "-march=native", "-fno-math-errno", "-std=c++17", "-fopenmp"],
    "libraries": ["-lopenblas", "-llapacke", "-fopenmp"]
  },
  "targets": [
    {
      "target_name": "nuggets_native",
      "sources": [
        "native/src/addon.cc",
        "native/src/gemm.cc",
        "native/src/linalg.cc",
        "native/src/rmsnorm.cc",
        "native/src/rope.cc",
        "native/src/attention.cc",
        "native/src/swiglu.cc",
        "native/src/embedding.cc",
        "native/src/crossentropy.cc",
        "native/src/adamw.cc",
        "native/src/sensitivity.cc",
        "native/src/window.cc",
        "native/src/gemm_half.cc"
      ]
    },
    {
      "target_name": "nuggets_bench",
      "sources": ["native/src/bench.cc"]
    }
  ]
}
