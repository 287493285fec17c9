//! mapprof facade (in progress).
