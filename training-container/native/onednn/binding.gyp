{
  "targets": [
    {
      "target_name": "onednn",
      "sources": ["src/addon.cc", "src/conv.cc", "src/elementwise.cc", "src/batchnorm.cc", "src/optimizer.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node dnnl-location.cjs include)"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O3", "-fopenmp", "-fexceptions", "-fno-trapping-math"],
      "libraries": ["<!@(node dnnl-location.cjs libs)", "-ldnnl", "-fopenmp"],
      "conditions": [
        [
          "OS=='mac'",
          {
            "xcode_settings": {
              "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
              "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
              "OTHER_CPLUSPLUSFLAGS": ["-O3", "-Xpreprocessor", "-fopenmp", "-fno-trapping-math"],
              "OTHER_LDFLAGS": ["-lomp"]
            },
            "libraries!": ["-fopenmp"]
          }
        ]
      ]
    }
  ]
}
