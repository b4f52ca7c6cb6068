// The agent loops' retry of a call to the log: until it succeeds or the
// agent stops (then the enclosing function returns), recording each error
// and keeping the backlog safe meanwhile. Used inside Engine's agent methods.
#pragma once

// Retries op until it succeeds or the agent stops; records errors.
#define LITEJET_RETRY(expr)                        \
  for (;;) {                                       \
    Status rs_ = (expr);                           \
    if (rs_.ok()) break;                           \
    connected_ = false;                            \
    {                                              \
      std::lock_guard<std::mutex> g_(mu_);         \
      SetError(rs_.message());                     \
    }                                              \
    GuardBacklog(false);                           \
    if (!Sleep(250)) return;                       \
  }
