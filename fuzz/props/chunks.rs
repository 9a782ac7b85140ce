// Included by the props files (no module of its own, so that each props file
// can be used alone): cuts `input` into chunks whose sizes come from `seed`,
// the way reads cut a byte stream.

/// `input` in chunks of 1 to 64 bytes (a zero seed: all of it at once).
fn chunks(input: &[u8], seed: u8) -> Vec<&[u8]> {
    if seed == 0 {
        return vec![input];
    }
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (1 + state as usize % 64).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        out.push(chunk);
        rest = tail;
    }
    out
}
