#pragma once
// Errors: one exception type whose message tells the user what went wrong and what to do next.
// Every user-facing failure (bad config, corrupt shard, incompatible checkpoint, NaN loss)
// throws mousse::Error; main() prints it and exits non-zero.
#include <sstream>
#include <stdexcept>
#include <string>

namespace mousse {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

namespace detail {
inline void append(std::ostringstream&) {}
template <class T, class... Rest>
void append(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

// fail("shard ", path, ": expected magic 20240520, found ", magic)
template <class... Args>
[[noreturn]] void fail(const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  throw Error(os.str());
}

}  // namespace mousse

// Internal invariants (programming errors, not user errors).
#define MOUSSE_CHECK(cond, ...)                                                      \
  do {                                                                               \
    if (!(cond)) ::mousse::fail(__FILE__, ":", __LINE__, ": check failed: " #cond " ", \
                                ##__VA_ARGS__);                                      \
  } while (0)
