//! Decoding of script replies (arrays of tags, integers and bulk strings).

use redis::Value as R;
use serde_json::{Map, Value};

use crate::Error;

fn protocol(what: &str, got: &R) -> Error {
    Error::Protocol(format!("expected {what}, got {got:?}"))
}

pub(crate) fn array(v: R) -> Result<Vec<R>, Error> {
    match v {
        R::Array(items) | R::Set(items) => Ok(items),
        // An empty Lua table may come back as nil on some servers.
        R::Nil => Ok(Vec::new()),
        other => Err(protocol("an array", &other)),
    }
}

pub(crate) fn bytes(v: &R) -> Result<&[u8], Error> {
    match v {
        R::BulkString(b) => Ok(b),
        R::SimpleString(s) => Ok(s.as_bytes()),
        other => Err(protocol("a string", other)),
    }
}

pub(crate) fn text(v: &R) -> Result<String, Error> {
    String::from_utf8(bytes(v)?.to_vec()).map_err(|e| Error::Protocol(format!("not UTF-8: {e}")))
}

pub(crate) fn int(v: &R) -> Result<i64, Error> {
    match v {
        R::Int(i) => Ok(*i),
        R::BulkString(_) | R::SimpleString(_) => {
            text(v)?.parse().map_err(|_| protocol("an integer", v))
        }
        other => Err(protocol("an integer", other)),
    }
}

/// The reply's leading tag (`'running'`, `'applied'`, …) and the rest.
pub(crate) fn tagged(v: R) -> Result<(String, Vec<R>), Error> {
    let mut items = array(v)?;
    if items.is_empty() {
        return Err(Error::Protocol("empty reply".into()));
    }
    let rest = items.split_off(1);
    Ok((text(&items[0])?, rest))
}

pub(crate) fn json(key: &str, v: &R) -> Result<Value, Error> {
    serde_json::from_slice(bytes(v)?).map_err(|source| Error::Json {
        key: key.to_string(),
        source,
    })
}

/// `[key1, json1, key2, json2, …]` as ordered pairs.
pub(crate) fn pairs(items: &[R]) -> Result<Vec<(String, Value)>, Error> {
    if !items.len().is_multiple_of(2) {
        return Err(Error::Protocol(
            "odd number of items in a key/value reply".into(),
        ));
    }
    items
        .chunks_exact(2)
        .map(|kv| {
            let key = text(&kv[0])?;
            let value = json(&key, &kv[1])?;
            Ok((key, value))
        })
        .collect()
}

pub(crate) fn map(items: &[R]) -> Result<Map<String, Value>, Error> {
    Ok(pairs(items)?.into_iter().collect())
}
