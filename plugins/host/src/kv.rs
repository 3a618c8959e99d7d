//! The plugin-scoped key/value store behind the `kv_get`/`kv_set` host calls.
//!
//! Every call carries the plugin's name, so one plugin can never read another's keys.
//! Embedders that want persistence supply their own [`KvStore`].

use std::collections::HashMap;

use parking_lot::Mutex;

/// Largest key a guest may use, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest value a guest may store, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// Key/value storage for plugins.
///
/// Contract: `get(p, k)` returns the last value `set(p, k, _)` stored for the same
/// plugin `p`; keys of different plugins never collide. Both are cheap and never
/// block on guest code. Sizes are already checked by the host
/// ([`MAX_KEY_BYTES`], [`MAX_VALUE_BYTES`]).
pub trait KvStore: Send + Sync + 'static {
    /// The value stored under `key` for `plugin`.
    fn get(&self, plugin: &str, key: &[u8]) -> Option<Vec<u8>>;
    /// Stores `value` under `key` for `plugin`. `Err` carries a reason shown to the
    /// guest as an I/O error code.
    fn set(&self, plugin: &str, key: &[u8], value: &[u8]) -> Result<(), String>;
}

/// `(plugin, key)` → value.
type KvMap = HashMap<(String, Vec<u8>), Vec<u8>>;

/// In-memory [`KvStore`], bounded per plugin.
#[derive(Debug, Default)]
pub struct MemoryKv {
    map: Mutex<KvMap>,
}

/// Most keys one plugin may hold in a [`MemoryKv`].
pub const MAX_KEYS_PER_PLUGIN: usize = 1024;

impl KvStore for MemoryKv {
    fn get(&self, plugin: &str, key: &[u8]) -> Option<Vec<u8>> {
        self.map
            .lock()
            .get(&(plugin.to_string(), key.to_vec()))
            .cloned()
    }

    fn set(&self, plugin: &str, key: &[u8], value: &[u8]) -> Result<(), String> {
        let mut map = self.map.lock();
        let k = (plugin.to_string(), key.to_vec());
        if !map.contains_key(&k)
            && map.keys().filter(|(p, _)| p == plugin).count() >= MAX_KEYS_PER_PLUGIN
        {
            return Err(format!(
                "plugin {plugin:?} already holds {MAX_KEYS_PER_PLUGIN} keys"
            ));
        }
        map.insert(k, value.to_vec());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_scoped_per_plugin() {
        let kv = MemoryKv::default();
        kv.set("a", b"k", b"1").unwrap();
        kv.set("b", b"k", b"2").unwrap();
        assert_eq!(kv.get("a", b"k").as_deref(), Some(&b"1"[..]));
        assert_eq!(kv.get("b", b"k").as_deref(), Some(&b"2"[..]));
        assert_eq!(kv.get("c", b"k"), None);
    }
}
