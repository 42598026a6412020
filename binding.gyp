{
  "targets": [
    {
      "target_name": "nuggets_native",
      "sources": [
        "native/src/addon.cc",
        "native/src/blas.cc",
        "native/src/svd.cc",
        "native/src/fused.cc",
        "native/src/search.cc",
        "native/src/gemm_half.cc"
      ],
      "include_dirs": ["<!@(node -p \"require('node-addon-api').include\")", "/usr/include/x86_64-linux-gnu/openblas-pthread", "/usr/include/openblas"],
      "dependencies": ["<!(node -p \"require('node-addon-api').gyp\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O3", "-march=native", "-fno-math-errno", "-std=c++17", "-fopenmp"],
      "libraries": ["-lopenblas", "-llapacke", "-fopenmp"]
    }
  ]
}
