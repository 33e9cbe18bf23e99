//! Atomic, version-checked writes: a hash is written (and a change announced) only when the
//! event is newer than the stored `version`. Returns 1 applied, 0 same version, -1 older.

/// KEYS[1] hash. ARGV: version, channel, notification, then field/value pairs.
pub const UPSERT_HASH: &str = r#"
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local v = tonumber(ARGV[1])
if cur == v then return 0 end
if cur > v then return -1 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], unpack(ARGV, 4))
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"#;

/// KEYS[1] course hash, KEYS[2] the new instructor's set. ARGV: version, channel,
/// notification, instructor set prefix, course id, deleted (1/0), instructor id, then pairs.
/// The course leaves its previous instructor's set when it moves, and every set when deleted.
pub const UPSERT_COURSE: &str = r#"
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local v = tonumber(ARGV[1])
if cur == v then return 0 end
if cur > v then return -1 end
local old = redis.call('HGET', KEYS[1], 'instructor_id')
if old and old ~= ARGV[7] then
  redis.call('SREM', ARGV[4] .. old .. ':courses', ARGV[5])
end
if ARGV[6] == '1' then
  redis.call('SREM', KEYS[2], ARGV[5])
else
  redis.call('SADD', KEYS[2], ARGV[5])
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], unpack(ARGV, 8))
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"#;
