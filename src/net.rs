//! Networking helpers (being written).
