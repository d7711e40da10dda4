{
  "targets": [{
    "target_name": "litefs_fuse",
    "include_dirs": [
      "<!(node -e \"require('fuse-shared-library/include')\")"
    ],
    "libraries": [
      "<!(node -e \"require('fuse-shared-library/lib')\")"
    ],
    "sources": ["litefs-fuse.c"],
    "cflags": ["-g", "-O2", "-Wall", "-Wno-unused-function"]
  }]
}
