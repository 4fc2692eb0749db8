// The kernel programs are the `monitor` binary of this crate, built for the BPF target by
// monitor's build script; this empty library only lets cargo track the crate as a dependency.
#![no_std]
