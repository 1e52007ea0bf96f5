//! Work split over every core in contiguous chunks, results in input order,
//! so nothing that is written or reported depends on thread scheduling.

/// Applies `f` to contiguous chunks of `items` on up to 8 threads (one per
/// core) and returns the results in chunk order. Small inputs (under `min`
/// items) and one-core machines run on the calling thread.
pub fn chunks<T: Sync, R: Send>(items: &[T], min: usize, f: impl Fn(&[T]) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if workers == 1 || items.len() < min.max(2) {
        return vec![f(items)];
    }
    let size = items.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = items
            .chunks(size)
            .map(|part| scope.spawn(move || f(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a worker thread panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_come_back_in_input_order() {
        let items: Vec<u32> = (0..1000).collect();
        let sums = super::chunks(&items, 10, |part| part.to_vec());
        assert_eq!(sums.concat(), items);
        assert_eq!(super::chunks(&items[..3], 10, |p| p.len()), [3]);
    }
}
