//! AMQP topic matching, for the in-process bus to route exactly as RabbitMQ does.

/// Whether routing `key` matches binding `pattern`: words are separated by `.`, `*` matches
/// exactly one word and `#` zero or more.
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let key: Vec<&str> = key.split('.').collect();
    matches(&pattern, &key)
}

fn matches(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| matches(rest, &key[skip..])),
        Some((&word, rest)) => match key.split_first() {
            Some((first, key_rest)) => (word == "*" || word == *first) && matches(rest, key_rest),
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::topic_matches;

    #[test]
    fn words_stars_and_hashes_match_as_in_rabbitmq() {
        let cases = [
            ("image.delete", "image.delete", true),
            ("image.delete", "image.update", false),
            ("image.*", "image.delete", true),
            ("image.*", "image.member.create", false),
            ("image.#", "image.member.create", true),
            ("image.#", "image", true),
            ("#", "anything.at.all", true),
            ("cache.prefetch.*", "cache.prefetch.node-1", true),
            ("*.prefetch.all", "cache.prefetch.all", true),
            ("cache.prefetch.node-1", "cache.prefetch.node-2", false),
            ("a.#.z", "a.b.c.z", true),
            ("a.#.z", "a.z", true),
            ("a.#.z", "a.b.c", false),
        ];
        for (pattern, key, expected) in cases {
            assert_eq!(topic_matches(pattern, key), expected, "{pattern} vs {key}");
        }
    }
}
