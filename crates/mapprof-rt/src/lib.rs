//! mapprof hot path (in progress).
