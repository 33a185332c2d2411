"""The real TensorFlow Lite Micro: locate a source tree, build it per target into a cache, run a
program built against it natively or under ``qemu-system-arm``."""
