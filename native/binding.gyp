{
  "targets": [
    {
      "target_name": "membrane_bpf",
      "sources": ["src/membrane_bpf.c", "src/proxy_sockets.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O2", "-Wall", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "libraries": ["-lbpf"]
    }
  ]
}
