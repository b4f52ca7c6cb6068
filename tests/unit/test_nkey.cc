// tests/unit/test_nkey.cc: the public key litejet derives from a NATS user
// nkey seed (transport/nats_conn.h), and the refusals of what is no user
// seed. e2e_secure checks the derived key against a real nats-server.
extern "C" {
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
}

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "transport/nats_conn.h"

using litejet::Status;
using litejet::transport::internal::NkeyFromSeedFile;
using litejet::transport::internal::NkeyUserPublicKey;

namespace {

// A user seed and its public key (computed independently, with Python's
// cryptography package and the nkeys encoding).
constexpr const char* kSeed = "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU";
constexpr const char* kPublic = "UCK5N7N66OBOINFXAYC2ACJQYFSOD4VYNU6APEJTAVFZB2SVHLKGEW7L";

void user_seed_gives_its_public_key(void**) {
  std::string pub;
  Status st = NkeyUserPublicKey(kSeed, &pub);
  assert_true(st.ok());
  assert_string_equal(pub.c_str(), kPublic);
}

void damaged_seeds_are_refused_without_showing_them(void**) {
  std::string pub = "unchanged", seed = kSeed;
  seed[10] = seed[10] == 'A' ? 'B' : 'A';
  Status st = NkeyUserPublicKey(seed, &pub);
  assert_string_equal(st.message().c_str(), "litejet: nkey seed is malformed: its checksum does not match");
  st = NkeyUserPublicKey(std::string(kSeed).substr(0, 40), &pub);
  assert_string_equal(st.message().c_str(), "litejet: nkey seed is malformed: not 58 base32 characters");
  st = NkeyUserPublicKey("su-lower-case-is-not-base32", &pub);
  assert_string_equal(st.message().c_str(), "litejet: nkey seed is malformed: not 58 base32 characters");
  // An account seed (SA...), valid otherwise.
  st = NkeyUserPublicKey("SAAAAAICAMCAKBQHBAEQUCYMBUHA6EARCIJRIFIWC4MBSGQ3DQOR4HYMHI", &pub);
  assert_string_equal(st.message().c_str(), "litejet: nkey seed is not a user seed (it must start with \"SU\")");
  assert_string_equal(pub.c_str(), "unchanged");
}

void seed_file_is_read_and_named_in_errors(void**) {
  const char* tmp = getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/litejet-nkey-XXXXXX";
  int fd = mkstemp(tmpl.data());
  assert_true(fd >= 0);
  close(fd);
  FILE* f = std::fopen(tmpl.c_str(), "w");
  std::fprintf(f, "# a comment\n%s\n", kSeed);
  std::fclose(f);
  std::string pub;
  assert_true(NkeyFromSeedFile(tmpl, &pub).ok());
  assert_string_equal(pub.c_str(), kPublic);

  f = std::fopen(tmpl.c_str(), "w");
  std::fprintf(f, "no seed here\n");
  std::fclose(f);
  Status st = NkeyFromSeedFile(tmpl, &pub);
  std::string want =
      "litejet: nats option nkey_seed: \"" + tmpl + "\" holds no user nkey seed (a word starting with \"SU\")";
  assert_string_equal(st.message().c_str(), want.c_str());
  unlink(tmpl.c_str());
  st = NkeyFromSeedFile(tmpl, &pub);
  want = "litejet: nats option nkey_seed: cannot read \"" + tmpl + "\": No such file or directory";
  assert_string_equal(st.message().c_str(), want.c_str());
}

}  // namespace

int main() {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(user_seed_gives_its_public_key),
      cmocka_unit_test(damaged_seeds_are_refused_without_showing_them),
      cmocka_unit_test(seed_file_is_read_and_named_in_errors),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
