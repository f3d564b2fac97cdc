//! Weir broker (being written).
