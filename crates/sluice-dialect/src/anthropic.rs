//! Adapter for this dialect (in progress).
