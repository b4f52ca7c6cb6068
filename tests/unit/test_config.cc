// Unit tests for extension/config: defaults, URI-over-environment precedence and every
// validation rule with its edge values, asserting the exact values and error messages.
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
extern "C" {  // cmocka 1.1.5's header declares its functions without C linkage for C++
#include <cmocka.h>
}
// clang-format on

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <map>
#include <string>
#include <vector>

#include "extension/config.h"

using litejet::Config;
using litejet::Durability;
using litejet::Lookup;
using litejet::ParseConfig;
using litejet::Role;
using litejet::Status;

namespace {

using Params = std::map<std::string, std::string>;

// A Lookup over a map; the map must outlive the returned function.
Lookup Fake(const Params& m) {
  return [&m](const char* key) -> const char* {
    auto it = m.find(key);
    return it == m.end() ? nullptr : it->second.c_str();
  };
}

const char* kPath = "/data/dir/app.db";

Status Parse(const Params& uri, const Params& env, Config* c, const std::string& path = kPath) {
  return ParseConfig(Fake(uri), Fake(env), path, c);
}

// Replicated parse that must succeed.
Config Good(Params uri, const Params& env = {}) {
  if (!uri.count("nats")) uri["nats"] = "nats://127.0.0.1:4222";
  Config c;
  Status st = Parse(uri, env, &c);
  if (!st.ok()) fail_msg("unexpected error: %s", st.message().c_str());
  return c;
}

// Parse that must fail with exactly `msg` and SQLITE_ERROR.
void Bad(const Params& uri, const Params& env, const char* msg, const std::string& path = kPath) {
  Config c;
  Status st = Parse(uri, env, &c, path);
  assert_false(st.ok());
  assert_int_equal(st.code(), 1);
  assert_string_equal(st.message().c_str(), msg);
}

// Replicated parse (nats given) that must fail with `msg`.
void BadR(Params uri, const char* msg, const Params& env = {}) {
  if (!uri.count("nats")) uri["nats"] = "nats://127.0.0.1:4222";
  Bad(uri, env, msg);
}

std::string HostName() {
  char buf[256] = {0};
  assert_int_equal(gethostname(buf, sizeof(buf) - 1), 0);
  return buf;
}

// ---- defaults -------------------------------------------------------------------------------

void defaults_without_nats_are_not_replicated(void**) {
  Config c;
  Status st = Parse({}, {}, &c);
  assert_true(st.ok());
  assert_false(c.replicated());
  assert_string_equal(c.nats.c_str(), "");
  assert_true(c.nats_urls.empty());
  assert_string_equal(c.name.c_str(), "app");
  assert_int_equal(static_cast<int>(c.role), static_cast<int>(Role::kAuto));
  assert_int_equal(static_cast<int>(c.durability), static_cast<int>(Durability::kAsync));
  assert_int_equal(c.max_lag_ms, 10000);
  assert_int_equal(c.lease_ttl_ms, 5000);
  assert_int_equal(c.stream_replicas, 1);
  assert_string_equal(c.prefix.c_str(), "litejet");
}

void defaults_with_nats(void**) {
  Config c = Good({{"nats", "nats://127.0.0.1:4222"}});
  assert_true(c.replicated());
  assert_string_equal(c.nats.c_str(), "nats://127.0.0.1:4222");
  assert_int_equal(c.nats_urls.size(), 1);
  assert_string_equal(c.nats_urls[0].c_str(), "nats://127.0.0.1:4222");
  assert_string_equal(c.name.c_str(), "app");
  const std::string host = HostName();
  assert_string_equal(c.node.c_str(), host.c_str());
  assert_string_equal(c.advertise.c_str(), host.c_str());
  assert_string_equal(c.prefix.c_str(), "litejet");
  assert_int_equal(static_cast<int>(c.role), static_cast<int>(Role::kAuto));
  assert_int_equal(static_cast<int>(c.durability), static_cast<int>(Durability::kAsync));
  assert_int_equal(c.max_lag_ms, 10000);
  assert_int_equal(c.lease_ttl_ms, 5000);
  assert_int_equal(c.stream_replicas, 1);
  for (const std::string* s : {&c.creds, &c.token, &c.user, &c.password, &c.tls_ca, &c.tls_cert, &c.tls_key}) {
    assert_true(s->empty());
  }
}

void null_lookups_mean_nothing_set(void**) {
  Config c;
  assert_true(ParseConfig(Lookup(), Lookup(), kPath, &c).ok());
  assert_false(c.replicated());
  assert_string_equal(c.name.c_str(), "app");
}

void unknown_uri_parameters_are_ignored(void**) {
  Config c = Good({{"vfs", "unix"}, {"mode", "ro"}, {"cache", "shared"}, {"Role", "bogus"}});
  assert_int_equal(static_cast<int>(c.role), static_cast<int>(Role::kAuto));
}

void error_leaves_output_untouched(void**) {
  Config c;
  c.name = "sentinel";
  c.max_lag_ms = 42;
  Status st = Parse({{"nats", "nats://h:1"}, {"name", "app"}, {"role", "boss"}}, {}, &c);
  assert_false(st.ok());
  assert_string_equal(c.name.c_str(), "sentinel");
  assert_int_equal(c.max_lag_ms, 42);
  assert_false(c.replicated());
}

// ---- precedence ------------------------------------------------------------------------------

// One row per setting: URI key, environment name, a valid value, another valid value, and how
// to read the field back as text.
struct Row {
  const char* key;
  const char* env;
  const char* a;
  const char* b;
  std::string (*get)(const Config&);
};

const Row kRows[] = {
    {"nats", "LITEJET_NATS_URL", "nats://a:1", "tls://b:2", [](const Config& c) { return c.nats; }},
    {"name", "LITEJET_NAME", "alpha", "beta", [](const Config& c) { return c.name; }},
    {"node", "LITEJET_NODE", "n1.example", "n2", [](const Config& c) { return c.node; }},
    {"role", "LITEJET_ROLE", "primary", "replica",
     [](const Config& c) { return std::string(litejet::RoleName(c.role)); }},
    {"durability", "LITEJET_DURABILITY", "sync", "async",
     [](const Config& c) { return std::string(litejet::DurabilityName(c.durability)); }},
    {"max_lag_ms", "LITEJET_MAX_LAG_MS", "0", "250", [](const Config& c) { return std::to_string(c.max_lag_ms); }},
    {"lease_ttl_ms", "LITEJET_LEASE_TTL_MS", "700", "9000",
     [](const Config& c) { return std::to_string(c.lease_ttl_ms); }},
    {"stream_replicas", "LITEJET_STREAM_REPLICAS", "3", "5",
     [](const Config& c) { return std::to_string(c.stream_replicas); }},
    {"prefix", "LITEJET_PREFIX", "lj", "other_prefix", [](const Config& c) { return c.prefix; }},
    {"snapshot_every_txns", "LITEJET_SNAPSHOT_EVERY_TXNS", "0", "5000",
     [](const Config& c) { return std::to_string(c.snapshot_every_txns); }},
    {"snapshot_every_ms", "LITEJET_SNAPSHOT_EVERY_MS", "0", "60000",
     [](const Config& c) { return std::to_string(c.snapshot_every_ms); }},
    {"retain_snapshots", "LITEJET_RETAIN_SNAPSHOTS", "1", "7",
     [](const Config& c) { return std::to_string(c.retain_snapshots); }},
    {"retain_txns", "LITEJET_RETAIN_TXNS", "0", "100000",
     [](const Config& c) { return std::to_string(c.retain_txns); }},
    {"retain_ms", "LITEJET_RETAIN_MS", "86400000", "0", [](const Config& c) { return std::to_string(c.retain_ms); }},
    {"advertise", "LITEJET_ADVERTISE", "http://10.0.0.1:8080", "host b", [](const Config& c) { return c.advertise; }},
    {"creds", "LITEJET_CREDS", "/etc/a.creds", "b.creds", [](const Config& c) { return c.creds; }},
    {"token", "LITEJET_TOKEN", "s3cr3t", "other", [](const Config& c) { return c.token; }},
    {"user", "LITEJET_USER", "alice", "bob", [](const Config& c) { return c.user; }},
    {"tls_ca", "LITEJET_TLS_CA", "/ca.pem", "ca2.pem", [](const Config& c) { return c.tls_ca; }},
};

void uri_wins_over_env_for_each_key(void**) {
  for (const Row& r : kRows) {
    Params uri = {{r.key, r.a}}, env = {{r.env, r.b}};
    Config c = Good(uri, env);
    assert_string_equal(r.get(c).c_str(), r.a);
  }
  // password needs a user; tls_cert and tls_key come as a pair.
  Config c = Good({{"user", "u"}, {"password", "p1"}, {"tls_cert", "c1"}, {"tls_key", "k1"}},
                  {{"LITEJET_PASSWORD", "p2"}, {"LITEJET_TLS_CERT", "c2"}, {"LITEJET_TLS_KEY", "k2"}});
  assert_string_equal(c.password.c_str(), "p1");
  assert_string_equal(c.tls_cert.c_str(), "c1");
  assert_string_equal(c.tls_key.c_str(), "k1");
}

void env_is_the_fallback_for_each_key(void**) {
  for (const Row& r : kRows) {
    Params uri, env = {{r.env, r.b}};
    if (std::string(r.key) != "nats") env["LITEJET_NATS_URL"] = "nats://x:1";
    Config c;
    Status st = Parse(uri, env, &c);
    if (!st.ok()) fail_msg("%s: %s", r.key, st.message().c_str());
    assert_string_equal(r.get(c).c_str(), r.b);
    assert_true(c.replicated());
  }
  Config c;
  assert_true(Parse({},
                    {{"LITEJET_NATS_URL", "nats://x:1"},
                     {"LITEJET_USER", "u"},
                     {"LITEJET_PASSWORD", "pw"},
                     {"LITEJET_TLS_CERT", "c.pem"},
                     {"LITEJET_TLS_KEY", "k.pem"}},
                    &c)
                  .ok());
  assert_string_equal(c.password.c_str(), "pw");
  assert_string_equal(c.tls_cert.c_str(), "c.pem");
  assert_string_equal(c.tls_key.c_str(), "k.pem");
}

void env_nats_uses_litejet_nats_url_not_litejet_nats(void**) {
  Config c;
  assert_true(Parse({}, {{"LITEJET_NATS", "nats://x:1"}}, &c).ok());
  assert_false(c.replicated());
}

void bad_env_value_shadowed_by_uri_is_ignored(void**) {
  Config c = Good({{"role", "primary"}, {"max_lag_ms", "5"}}, {{"LITEJET_ROLE", "boss"}, {"LITEJET_MAX_LAG_MS", "x"}});
  assert_int_equal(static_cast<int>(c.role), static_cast<int>(Role::kPrimary));
  assert_int_equal(c.max_lag_ms, 5);
}

void snapshot_settings_default_and_validate(void**) {
  Config c = Good({{"nats", "nats://127.0.0.1:4222"}});
  assert_int_equal(c.snapshot_every_txns, 100000);
  assert_int_equal(c.snapshot_every_ms, 0);
  assert_int_equal(c.retain_snapshots, 2);
  assert_int_equal(c.retain_txns, 0);
  assert_int_equal(c.retain_ms, 0);
  Bad({{"nats", "nats://x:1"}, {"snapshot_every_txns", "-1"}}, {},
      "litejet: snapshot_every_txns \"-1\" is invalid: use an integer from 0 to 1125899906842624");
  Bad({{"nats", "nats://x:1"}, {"snapshot_every_ms", "10"}}, {},
      "litejet: snapshot_every_ms \"10\" is invalid: use 0 (off) or at least 1000");
  Bad({}, {{"LITEJET_NATS_URL", "nats://x:1"}, {"LITEJET_RETAIN_SNAPSHOTS", "0"}},
      "litejet: retain_snapshots \"0\" (from LITEJET_RETAIN_SNAPSHOTS) is invalid: use an integer from 1 to 1000");
  Bad({{"nats", "nats://x:1"}, {"retain_txns", "many"}}, {},
      "litejet: retain_txns \"many\" is invalid: use an integer from 0 to 1125899906842624");
}

void bad_env_value_names_the_variable(void**) {
  Bad({}, {{"LITEJET_NATS_URL", "nats://x:1"}, {"LITEJET_ROLE", "boss"}},
      "litejet: role \"boss\" (from LITEJET_ROLE) is invalid: use auto, primary or replica");
  Bad({}, {{"LITEJET_NATS_URL", "http://x"}},
      "litejet: nats \"http://x\" (from LITEJET_NATS_URL) is invalid: "
      "use nats://host:port[,nats://host:port...]");
  Bad({}, {{"LITEJET_LEASE_TTL_MS", "1"}},
      "litejet: lease_ttl_ms \"1\" (from LITEJET_LEASE_TTL_MS) is invalid: "
      "use an integer from 500 to 600000");
}

// ---- nats ------------------------------------------------------------------------------------

void empty_nats_uri_disables_replication_over_env(void**) {
  Config c;
  assert_true(Parse({{"nats", ""}}, {{"LITEJET_NATS_URL", "nats://x:1"}}, &c).ok());
  assert_false(c.replicated());
  assert_true(c.nats_urls.empty());
}

void empty_nats_env_means_unset(void**) {
  Config c;
  assert_true(Parse({}, {{"LITEJET_NATS_URL", ""}}, &c).ok());
  assert_false(c.replicated());
}

void nats_list_is_split_and_trimmed(void**) {
  const char* v = " nats://a:1 ,\ttls://b.example:2,ws://c , wss://[::1]:443 ,nats://u:p@d:4222";
  Config c = Good({{"nats", v}});
  assert_string_equal(c.nats.c_str(), v);
  std::vector<std::string> want = {"nats://a:1", "tls://b.example:2", "ws://c", "wss://[::1]:443", "nats://u:p@d:4222"};
  assert_int_equal(c.nats_urls.size(), want.size());
  for (size_t i = 0; i < want.size(); i++) assert_string_equal(c.nats_urls[i].c_str(), want[i].c_str());
}

void nats_accepts_valid_urls(void**) {
  for (const char* u :
       {"nats://h", "nats://h:1", "nats://h:65535", "tls://h:4443", "ws://h:80", "wss://h:443", "nats://10.0.0.1:4222",
        "nats://my-host.example.com:4222", "nats://[::1]", "nats://[fe80::1]:4222", "nats://[::ffff:10.0.0.1]:4222",
        "nats://user:pass@h:4222", "nats://token@h", "nats://h:00080"}) {
    Config c = Good({{"nats", u}});
    assert_string_equal(c.nats_urls[0].c_str(), u);
  }
}

void nats_rejects_malformed_urls(void**) {
  for (const char* u : {"http://x",       "x",
                        "127.0.0.1:4222", "nats:/h",
                        "nats//h",        "NATS://h",
                        "nats://",        "nats://:4222",
                        "nats://h:",      "nats://h:0",
                        "nats://h:65536", "nats://h:99999999999999999999",
                        "nats://h:-1",    "nats://h:+1",
                        "nats://h:4222/", "nats://h/path",
                        "nats://h:80:90", "nats://ho st",
                        "nats://h_x",     "nats://[]",
                        "nats://[::1",    "nats://::1",
                        "nats://[::1]x",  "nats://[::g]",
                        "nats://h:42 22", "nats://h?x=1"}) {
    std::string msg = std::string("litejet: nats \"") + u + "\" is invalid: use nats://host:port[,nats://host:port...]";
    BadR({{"nats", u}}, msg.c_str());
  }
}

void nats_error_names_the_bad_entry(void**) {
  BadR({{"nats", "nats://a:1, http://b:2 ,nats://c:3"}},
       "litejet: nats \"http://b:2\" is invalid: use nats://host:port[,nats://host:port...]");
}

void nats_empty_entries_are_rejected(void**) {
  for (const char* v : {"nats://a:1,,nats://b:2", "nats://a:1,", ",nats://a:1", " ", ","}) {
    std::string msg = std::string("litejet: nats \"") + v + "\" is invalid: use nats://host:port[,nats://host:port...]";
    BadR({{"nats", v}}, msg.c_str());
  }
}

void nats_error_hides_userinfo(void**) {
  BadR({{"nats", "nats://@h"}},
       "litejet: nats \"nats://***@h\" is invalid: use nats://host:port[,nats://host:port...]");
  BadR({{"nats", "nats://alice:s3cret@h:0"}},
       "litejet: nats \"nats://***@h:0\" is invalid: use nats://host:port[,nats://host:port...]");
}

// ---- name ------------------------------------------------------------------------------------

void name_accepts_allowed_characters_up_to_64(void**) {
  for (std::string n : {std::string("a"), std::string("Az09_-"), std::string(64, 'x')}) {
    Config c = Good({{"name", n}});
    assert_string_equal(c.name.c_str(), n.c_str());
  }
}

void name_rejects_bad_values(void**) {
  std::string long_name(65, 'x');
  for (std::string n :
       {long_name, std::string(""), std::string("a b"), std::string("a.b"), std::string("a/b"), std::string("ä")}) {
    std::string msg;
    if (n == "ä") {
      msg = "litejet: name \"\\xc3\\xa4\" is invalid: use [A-Za-z0-9_-]{1,64}";
    } else {
      msg = "litejet: name \"" + n + "\" is invalid: use [A-Za-z0-9_-]{1,64}";
    }
    BadR({{"name", n}}, msg.c_str());
  }
}

void name_default_is_the_file_name_without_extension(void**) {
  const std::map<std::string, std::string> cases = {
      {"/a/b/app.db", "app"},         {"app.db", "app"},  {"app", "app"},           {"/a/b.d/app", "app"},
      {"./x/my-db.sqlite3", "my-db"}, {"/a/app.", "app"}, {"rel/dir/A_1.db", "A_1"}};
  for (const auto& [path, want] : cases) {
    Config c;
    Status st = ParseConfig(Fake({{"nats", "nats://h:1"}}), Lookup(), path, &c);
    if (!st.ok()) fail_msg("%s: %s", path.c_str(), st.message().c_str());
    assert_string_equal(c.name.c_str(), want.c_str());
  }
}

void name_default_invalid_asks_for_the_name_parameter(void**) {
  const Params nats = {{"nats", "nats://h:1"}};
  Bad(nats, {},
      "litejet: name \".hidden\" (derived from the file name) is invalid: "
      "use [A-Za-z0-9_-]{1,64} or set the name parameter",
      "/a/.hidden");
  Bad(nats, {},
      "litejet: name \"my app\" (derived from the file name) is invalid: "
      "use [A-Za-z0-9_-]{1,64} or set the name parameter",
      "/a/my app.db");
  Bad(nats, {},
      "litejet: name \"app.tar\" (derived from the file name) is invalid: "
      "use [A-Za-z0-9_-]{1,64} or set the name parameter",
      "/a/app.tar.gz");
  Bad(nats, {},
      "litejet: name \"\" (derived from the file name) is invalid: "
      "use [A-Za-z0-9_-]{1,64} or set the name parameter",
      "");
  Bad(nats, {},
      "litejet: name \"\" (derived from the file name) is invalid: "
      "use [A-Za-z0-9_-]{1,64} or set the name parameter",
      "/a/dir/");
}

void name_default_invalid_is_fine_when_not_replicated(void**) {
  Config c;
  assert_true(Parse({}, {}, &c, "/a/my app.db").ok());
  assert_false(c.replicated());
  assert_string_equal(c.name.c_str(), "");
}

void name_parameter_overrides_an_invalid_default(void**) {
  Config c;
  assert_true(Parse({{"nats", "nats://h:1"}, {"name", "hidden"}}, {}, &c, "/a/.hidden").ok());
  assert_string_equal(c.name.c_str(), "hidden");
  assert_true(Parse({{"nats", "nats://h:1"}}, {{"LITEJET_NAME", "env_name"}}, &c, "/a/.hidden").ok());
  assert_string_equal(c.name.c_str(), "env_name");
}

// ---- node ------------------------------------------------------------------------------------

void node_accepts_allowed_characters_up_to_64(void**) {
  for (std::string n : {std::string("n"), std::string("a.b-c_D9"), std::string(64, 'n')}) {
    Config c = Good({{"node", n}});
    assert_string_equal(c.node.c_str(), n.c_str());
    assert_string_equal(c.advertise.c_str(), n.c_str());  // advertise defaults to node
  }
}

void node_rejects_bad_values(void**) {
  for (std::string n : {std::string(65, 'n'), std::string(""), std::string("a b"), std::string("a/b"),
                        std::string("a*b"), std::string("a>b")}) {
    std::string msg = "litejet: node \"" + n + "\" is invalid: use [A-Za-z0-9_.-]{1,64}";
    BadR({{"node", n}}, msg.c_str());
  }
}

void node_default_is_the_host_name(void**) {
  Config c = Good({});
  assert_string_equal(c.node.c_str(), HostName().c_str());
}

// ---- role, durability --------------------------------------------------------------------------

void role_values(void**) {
  assert_int_equal(static_cast<int>(Good({{"role", "auto"}}).role), static_cast<int>(Role::kAuto));
  assert_int_equal(static_cast<int>(Good({{"role", "primary"}}).role), static_cast<int>(Role::kPrimary));
  assert_int_equal(static_cast<int>(Good({{"role", "replica"}}).role), static_cast<int>(Role::kReplica));
  for (const char* v : {"", "Primary", "master", "primary ", "candidate"}) {
    std::string msg = std::string("litejet: role \"") + v + "\" is invalid: use auto, primary or replica";
    BadR({{"role", v}}, msg.c_str());
  }
}

void durability_values(void**) {
  assert_int_equal(static_cast<int>(Good({{"durability", "async"}}).durability), static_cast<int>(Durability::kAsync));
  assert_int_equal(static_cast<int>(Good({{"durability", "sync"}}).durability), static_cast<int>(Durability::kSync));
  for (const char* v : {"", "SYNC", "full", "sync;"}) {
    std::string msg = std::string("litejet: durability \"") + v + "\" is invalid: use async or sync";
    BadR({{"durability", v}}, msg.c_str());
  }
}

void forward_values(void**) {
  assert_false(Good({}).forward);  // off by default: safe
  assert_true(Good({{"forward", "on"}}).forward);
  assert_false(Good({{"forward", "off"}}).forward);
  assert_int_equal(Good({}).forward_timeout_ms, 10000);
  assert_int_equal(Good({{"forward_timeout_ms", "250"}}).forward_timeout_ms, 250);
  for (const char* v : {"", "ON", "yes", "on "}) {
    std::string msg = std::string("litejet: forward \"") + v + "\" is invalid: use on or off";
    BadR({{"forward", v}}, msg.c_str());
  }
  BadR({{"forward_timeout_ms", "5"}},
       "litejet: forward_timeout_ms \"5\" is invalid: use an integer from 100 to 600000");
}

void explicit_values_are_checked_even_without_nats(void**) {
  Bad({{"role", "boss"}}, {}, "litejet: role \"boss\" is invalid: use auto, primary or replica");
  Bad({{"nats", ""}, {"max_lag_ms", "x"}}, {},
      "litejet: max_lag_ms \"x\" is invalid: use an integer from 0 to 86400000");
}

void names_round_trip(void**) {
  assert_string_equal(litejet::RoleName(Role::kAuto), "auto");
  assert_string_equal(litejet::RoleName(Role::kPrimary), "primary");
  assert_string_equal(litejet::RoleName(Role::kReplica), "replica");
  assert_string_equal(litejet::DurabilityName(Durability::kAsync), "async");
  assert_string_equal(litejet::DurabilityName(Durability::kSync), "sync");
}

// ---- numbers ---------------------------------------------------------------------------------

void ExpectNumber(const char* key, const char* v, int64_t want) {
  Config c = Good({{key, v}});
  int64_t got = std::string(key) == "max_lag_ms"     ? c.max_lag_ms
                : std::string(key) == "lease_ttl_ms" ? c.lease_ttl_ms
                                                     : c.stream_replicas;
  assert_int_equal(got, want);
}

void ExpectBadNumber(const char* key, const char* v, const char* range) {
  std::string msg = std::string("litejet: ") + key + " \"" + v + "\" is invalid: use an integer from " + range;
  BadR({{key, v}}, msg.c_str());
}

const char* kJunk[] = {"",
                       "abc",
                       "10x",
                       "x10",
                       "-1",
                       "+5",
                       " 5",
                       "5 ",
                       "1e3",
                       "0x10",
                       "1.0",
                       "1,0",
                       "99999999999999999999",
                       "18446744073709551616"};

void max_lag_ms_range(void**) {
  ExpectNumber("max_lag_ms", "0", 0);
  ExpectNumber("max_lag_ms", "86400000", 86400000);
  ExpectNumber("max_lag_ms", "007", 7);
  ExpectBadNumber("max_lag_ms", "86400001", "0 to 86400000");
  for (const char* v : kJunk) ExpectBadNumber("max_lag_ms", v, "0 to 86400000");
}

void lease_ttl_ms_range(void**) {
  ExpectNumber("lease_ttl_ms", "500", 500);
  ExpectNumber("lease_ttl_ms", "600000", 600000);
  ExpectBadNumber("lease_ttl_ms", "499", "500 to 600000");
  ExpectBadNumber("lease_ttl_ms", "0", "500 to 600000");
  ExpectBadNumber("lease_ttl_ms", "600001", "500 to 600000");
  for (const char* v : kJunk) ExpectBadNumber("lease_ttl_ms", v, "500 to 600000");
}

void stream_replicas_range(void**) {
  ExpectNumber("stream_replicas", "1", 1);
  ExpectNumber("stream_replicas", "3", 3);
  ExpectNumber("stream_replicas", "5", 5);
  ExpectBadNumber("stream_replicas", "0", "1 to 5");
  ExpectBadNumber("stream_replicas", "6", "1 to 5");
  ExpectBadNumber("stream_replicas", "9", "1 to 5");
  ExpectBadNumber("stream_replicas", "10", "1 to 5");
  for (const char* v : kJunk) ExpectBadNumber("stream_replicas", v, "1 to 5");
}

void number_error_exact_message(void**) {
  BadR({{"max_lag_ms", "abc"}}, "litejet: max_lag_ms \"abc\" is invalid: use an integer from 0 to 86400000");
}

// ---- prefix, advertise -----------------------------------------------------------------------

void prefix_values(void**) {
  for (std::string p : {std::string("p"), std::string("a-B_9"), std::string(32, 'p')}) {
    assert_string_equal(Good({{"prefix", p}}).prefix.c_str(), p.c_str());
  }
  for (std::string p : {std::string(33, 'p'), std::string(""), std::string("a.b"), std::string("a b"),
                        std::string("a*"), std::string("a>")}) {
    std::string msg = "litejet: prefix \"" + p + "\" is invalid: use [A-Za-z0-9_-]{1,32}";
    BadR({{"prefix", p}}, msg.c_str());
  }
}

void advertise_values(void**) {
  for (std::string a : {std::string("x"), std::string("http://10.0.0.1:8080/db?x=1"), std::string("host with spaces"),
                        std::string(256, 'a')}) {
    assert_string_equal(Good({{"advertise", a}}).advertise.c_str(), a.c_str());
  }
  for (std::string a : {std::string(257, 'a'), std::string("")}) {
    std::string msg = "litejet: advertise \"" + a + "\" is invalid: use 1 to 256 printable ASCII characters";
    BadR({{"advertise", a}}, msg.c_str());
  }
  BadR({{"advertise", "a\tb"}}, "litejet: advertise \"a\\x09b\" is invalid: use 1 to 256 printable ASCII characters");
  BadR({{"advertise", "caf\xc3\xa9"}},
       "litejet: advertise \"caf\\xc3\\xa9\" is invalid: use 1 to 256 printable ASCII characters");
}

void advertise_defaults_to_the_node(void**) {
  assert_string_equal(Good({{"node", "n7"}}).advertise.c_str(), "n7");
  assert_string_equal(Good({}, {{"LITEJET_NODE", "n8"}}).advertise.c_str(), "n8");
  assert_string_equal(Good({{"node", "n7"}, {"advertise", "a"}}).advertise.c_str(), "a");
}

void error_quotes_are_escaped(void**) {
  BadR({{"role", "a\"b\\c"}}, "litejet: role \"a\\\"b\\\\c\" is invalid: use auto, primary or replica");
}

// ---- secrets and TLS -------------------------------------------------------------------------

void secrets_are_taken_as_given(void**) {
  Config c = Good({{"creds", "/run/secrets/x.creds"},
                   {"token", " tok with spaces "},
                   {"user", "alice"},
                   {"password", "p@ss:word"},
                   {"tls_ca", "ca.pem"},
                   {"tls_cert", "/missing/cert.pem"},
                   {"tls_key", "key.pem"}});
  assert_string_equal(c.creds.c_str(), "/run/secrets/x.creds");
  assert_string_equal(c.token.c_str(), " tok with spaces ");
  assert_string_equal(c.user.c_str(), "alice");
  assert_string_equal(c.password.c_str(), "p@ss:word");
  assert_string_equal(c.tls_ca.c_str(), "ca.pem");
  assert_string_equal(c.tls_cert.c_str(), "/missing/cert.pem");
  assert_string_equal(c.tls_key.c_str(), "key.pem");
}

void empty_secret_means_unset(void**) {
  Config c = Good({{"creds", ""},
                   {"token", ""},
                   {"user", ""},
                   {"password", ""},
                   {"tls_ca", ""},
                   {"tls_cert", ""},
                   {"tls_key", ""}});
  for (const std::string* s : {&c.creds, &c.token, &c.user, &c.password, &c.tls_ca, &c.tls_cert, &c.tls_key}) {
    assert_true(s->empty());
  }
  // An empty URI value does not hide the secret kept in the environment.
  c = Good({{"token", ""}}, {{"LITEJET_TOKEN", "from-env"}});
  assert_string_equal(c.token.c_str(), "from-env");
  c = Good({}, {{"LITEJET_CREDS", ""}});
  assert_string_equal(c.creds.c_str(), "");
}

void password_without_user_is_an_error(void**) {
  const char* msg = "litejet: password is set without user: set user too, or use token";
  BadR({{"password", "pw"}}, msg);
  BadR({}, msg, {{"LITEJET_PASSWORD", "pw"}});
  BadR({{"password", "pw"}, {"user", ""}}, msg);
  Config c = Good({{"password", "pw"}}, {{"LITEJET_USER", "u"}});
  assert_string_equal(c.user.c_str(), "u");
  c = Good({{"user", "u"}});  // user alone is fine
  assert_string_equal(c.password.c_str(), "");
}

void password_is_never_echoed(void**) {
  Config c;
  Status st = Parse({{"nats", "nats://h:1"}, {"password", "hunter2"}}, {}, &c);
  assert_false(st.ok());
  assert_null(strstr(st.message().c_str(), "hunter2"));
  assert_non_null(strstr(st.message().c_str(), "password"));
}

// nkey_seed is a path like creds; the two exclude each other.
void nkey_seed_is_a_secret_path(void**) {
  Config c = Good({{"nkey_seed", "/run/secrets/app.nk"}});
  assert_string_equal(c.nkey_seed.c_str(), "/run/secrets/app.nk");
  c = Good({}, {{"LITEJET_NKEY_SEED", "env.nk"}});
  assert_string_equal(c.nkey_seed.c_str(), "env.nk");
  assert_string_equal(TransportOptions(c).nkey_seed.c_str(), "env.nk");
  BadR({{"nkey_seed", "a.nk"}, {"creds", "a.creds"}},
       "litejet: creds and nkey_seed are both set: use one (a creds file holds its own nkey)");
}

// js_domain: a JetStream domain name, passed to the transport; empty = unset.
void js_domain_is_a_token(void**) {
  assert_string_equal(Good({}).js_domain.c_str(), "");
  Config c = Good({{"js_domain", "hub"}});
  assert_string_equal(c.js_domain.c_str(), "hub");
  assert_string_equal(TransportOptions(c).js_domain.c_str(), "hub");
  assert_string_equal(Good({}, {{"LITEJET_JS_DOMAIN", "central-1"}}).js_domain.c_str(), "central-1");
  assert_string_equal(Good({{"js_domain", ""}}).js_domain.c_str(), "");
  BadR({{"js_domain", "a.b"}}, "litejet: js_domain \"a.b\" is invalid: use [A-Za-z0-9_-]{1,64}");
}

void tls_cert_and_key_come_together(void**) {
  BadR({{"tls_cert", "c.pem"}}, "litejet: tls_cert is set without tls_key: set both or neither");
  BadR({{"tls_key", "k.pem"}}, "litejet: tls_key is set without tls_cert: set both or neither");
  Config c = Good({{"tls_ca", "ca.pem"}});  // a CA alone is fine
  assert_string_equal(c.tls_ca.c_str(), "ca.pem");
}

// ---- ProcessEnv ------------------------------------------------------------------------------

void process_env_reads_getenv(void**) {
  setenv("LITEJET_TEST_CONFIG_VAR", "value", 1);
  Lookup env = litejet::ProcessEnv();
  assert_string_equal(env("LITEJET_TEST_CONFIG_VAR"), "value");
  unsetenv("LITEJET_TEST_CONFIG_VAR");
  assert_null(env("LITEJET_TEST_CONFIG_VAR"));

  setenv("LITEJET_NATS_URL", "nats://envhost:4222", 1);
  setenv("LITEJET_ROLE", "replica", 1);
  Config c;
  Status st = ParseConfig(Lookup(), env, kPath, &c);
  unsetenv("LITEJET_NATS_URL");
  unsetenv("LITEJET_ROLE");
  assert_true(st.ok());
  assert_string_equal(c.nats.c_str(), "nats://envhost:4222");
  assert_int_equal(static_cast<int>(c.role), static_cast<int>(Role::kReplica));
}

}  // namespace

int main(void) {
  // Tests must not see a developer's own LITEJET_* settings through ProcessEnv.
  for (const char* v : {"LITEJET_NATS_URL", "LITEJET_ROLE"}) unsetenv(v);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(defaults_without_nats_are_not_replicated),
      cmocka_unit_test(defaults_with_nats),
      cmocka_unit_test(null_lookups_mean_nothing_set),
      cmocka_unit_test(unknown_uri_parameters_are_ignored),
      cmocka_unit_test(error_leaves_output_untouched),
      cmocka_unit_test(uri_wins_over_env_for_each_key),
      cmocka_unit_test(env_is_the_fallback_for_each_key),
      cmocka_unit_test(env_nats_uses_litejet_nats_url_not_litejet_nats),
      cmocka_unit_test(bad_env_value_shadowed_by_uri_is_ignored),
      cmocka_unit_test(bad_env_value_names_the_variable),
      cmocka_unit_test(snapshot_settings_default_and_validate),
      cmocka_unit_test(empty_nats_uri_disables_replication_over_env),
      cmocka_unit_test(empty_nats_env_means_unset),
      cmocka_unit_test(nats_list_is_split_and_trimmed),
      cmocka_unit_test(nats_accepts_valid_urls),
      cmocka_unit_test(nats_rejects_malformed_urls),
      cmocka_unit_test(nats_error_names_the_bad_entry),
      cmocka_unit_test(nats_empty_entries_are_rejected),
      cmocka_unit_test(nats_error_hides_userinfo),
      cmocka_unit_test(name_accepts_allowed_characters_up_to_64),
      cmocka_unit_test(name_rejects_bad_values),
      cmocka_unit_test(name_default_is_the_file_name_without_extension),
      cmocka_unit_test(name_default_invalid_asks_for_the_name_parameter),
      cmocka_unit_test(name_default_invalid_is_fine_when_not_replicated),
      cmocka_unit_test(name_parameter_overrides_an_invalid_default),
      cmocka_unit_test(node_accepts_allowed_characters_up_to_64),
      cmocka_unit_test(node_rejects_bad_values),
      cmocka_unit_test(node_default_is_the_host_name),
      cmocka_unit_test(role_values),
      cmocka_unit_test(durability_values),
      cmocka_unit_test(forward_values),
      cmocka_unit_test(explicit_values_are_checked_even_without_nats),
      cmocka_unit_test(names_round_trip),
      cmocka_unit_test(max_lag_ms_range),
      cmocka_unit_test(lease_ttl_ms_range),
      cmocka_unit_test(stream_replicas_range),
      cmocka_unit_test(number_error_exact_message),
      cmocka_unit_test(prefix_values),
      cmocka_unit_test(advertise_values),
      cmocka_unit_test(advertise_defaults_to_the_node),
      cmocka_unit_test(error_quotes_are_escaped),
      cmocka_unit_test(secrets_are_taken_as_given),
      cmocka_unit_test(empty_secret_means_unset),
      cmocka_unit_test(password_without_user_is_an_error),
      cmocka_unit_test(password_is_never_echoed),
      cmocka_unit_test(tls_cert_and_key_come_together),
      cmocka_unit_test(nkey_seed_is_a_secret_path),
      cmocka_unit_test(js_domain_is_a_token),
      cmocka_unit_test(process_env_reads_getenv),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
