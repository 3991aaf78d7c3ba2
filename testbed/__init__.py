"""Test infrastructure shared by the test suites (tests/) and the benchmarks (bench/): Docker helpers and
the multi-host harness of Docker-in-Docker "hosts" reached over SSH. Runs on the controller only; nothing
here is deployed to a host. See testbed/README.md and docs/testing.md."""
