//! A small deterministic PRNG (SplitMix64). Our own rather than a crate's, so
//! a seed replays the same requests for as long as this file is unchanged.

pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The stream for request `index` of a run: requests are generated
    /// independently, so each one can be replayed (and made concurrently).
    pub fn for_request(seed: u64, index: u64) -> Self {
        let mut mixer = Self(seed ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03));
        Self(mixer.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A number in `range` (inclusive).
    pub fn between(&mut self, low: usize, high: usize) -> usize {
        low + self.below(high - low + 1)
    }

    pub fn percent(&mut self, chance: usize) -> bool {
        self.below(100) < chance
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_and_requests_differ() {
        let first: Vec<u64> = (0..4).map(|_| Prng::new(7).next_u64()).collect();
        assert!(first.windows(2).all(|w| w[0] == w[1]));
        let a = Prng::for_request(7, 1).next_u64();
        let b = Prng::for_request(7, 2).next_u64();
        assert_ne!(a, b);
        assert_eq!(a, Prng::for_request(7, 1).next_u64());
    }

    #[test]
    fn below_stays_in_range() {
        let mut prng = Prng::new(1);
        assert!((0..1000).all(|_| prng.below(3) < 3));
        assert!((0..1000).all(|_| (5..=9).contains(&prng.between(5, 9))));
    }
}
