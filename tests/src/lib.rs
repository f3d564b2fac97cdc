//! Support for the cross-process tests in `tests/tests/`.
