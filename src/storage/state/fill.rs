//! The zero-fill's part of the state: how far the active file is zero-filled ahead of its data.
//! Why the log zero-fills and how much at a time: `zero_fill.rs`.

/// The zero-filled region of the active file ahead of its data, and the fill in flight. One per
/// active file: a roll starts the next file with a new one.
///
/// Invariants:
/// - The file's blocks below `zeroed` hold data or zeros and are allocated, with the file size
///   covering them committed by an fdatasync: a data write that ends at or below `zeroed` changes
///   no metadata. It only grows, and a fill moves it only once it has ended (after its
///   fdatasync, or when the log failed).
/// - At most one fill is in flight, `filling = Some((from, to))` writing zeros to `[from, to)`.
///   It starts at or beyond the end of every data write issued before it, and no data write
///   reaching past `from` is issued until it has ended: zeros landing after data would erase it.
pub(crate) struct ZeroFill {
    zeroed: u64,
    filling: Option<(u64, u64)>,
}

impl ZeroFill {
    /// A file whose first `zeroed` bytes are written and committed (its size when opened).
    pub(crate) fn new(zeroed: u64) -> Self {
        ZeroFill {
            zeroed,
            filling: None,
        }
    }

    /// End of the committed zero-filled (or written) region.
    pub(crate) fn zeroed(&self) -> u64 {
        self.zeroed
    }

    /// The fill in flight, `[from, to)`.
    pub(crate) fn in_flight(&self) -> Option<(u64, u64)> {
        self.filling
    }

    /// Records that a fill of `[from, to)` was started (none may be in flight).
    pub(crate) fn start(&mut self, from: u64, to: u64) {
        debug_assert!(self.filling.is_none(), "one zero-fill at a time");
        self.filling = Some((from, to));
    }

    /// Records that the fill in flight ended, committing the zeros up to `to`.
    pub(crate) fn finish(&mut self, to: u64) {
        self.filling = None;
        self.zeroed = self.zeroed.max(to);
    }
}
