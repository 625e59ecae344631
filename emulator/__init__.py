"""The Docker-free local emulator: runs the functions as plain processes."""
