// Status: the one error vocabulary of shoal.
//
// Every fallible operation in the public API returns a Status (or a Result<T>, see result.h).
// No exception crosses the API. A Status is either OK or carries a Code and a human-readable
// message that names what failed (object path, chunk index, file, errno text).
//
// Thread-safety: Status is a value type; distinct objects may be used from distinct threads.
#pragma once

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>

#include "shoal/export.h"

namespace shoal {

// Codes are stable: they are persisted in logs and will cross the wire between ranks.
enum class Code : uint8_t {
  kOk = 0,
  kNotFound = 1,            // the object or directory does not exist (or is not sealed yet)
  kAlreadyExists = 2,       // create of a name that exists, sealed or being written
  kInvalidArgument = 3,     // bad name, size, offset, option; overlapping writes
  kCorruption = 4,          // checksum mismatch or undecodable stored data
  kIOError = 5,             // the disk or the OS refused an operation
  kNoSpace = 6,             // ENOSPC / metadata map full: nothing sealed was damaged
  kUnavailable = 7,         // a resource is shut down or temporarily unusable
  kTimeout = 8,             // a deadline passed
  kPermissionDenied = 9,    // EACCES/EPERM, or a store locked by another process
  kFailedPrecondition = 10, // the operation does not fit the object's state (e.g. write after seal)
  kInternal = 11,           // a bug: an invariant of shoal itself was broken
};

// Returns the stable name of a code, e.g. "NotFound".
SHOAL_EXPORT std::string_view CodeName(Code code);

class [[nodiscard]] SHOAL_EXPORT Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string_view message);

  static Status OK() { return Status(); }
  static Status NotFound(std::string_view msg) { return {Code::kNotFound, msg}; }
  static Status AlreadyExists(std::string_view msg) { return {Code::kAlreadyExists, msg}; }
  static Status InvalidArgument(std::string_view msg) { return {Code::kInvalidArgument, msg}; }
  static Status Corruption(std::string_view msg) { return {Code::kCorruption, msg}; }
  static Status IOError(std::string_view msg) { return {Code::kIOError, msg}; }
  static Status NoSpace(std::string_view msg) { return {Code::kNoSpace, msg}; }
  static Status Unavailable(std::string_view msg) { return {Code::kUnavailable, msg}; }
  static Status Timeout(std::string_view msg) { return {Code::kTimeout, msg}; }
  static Status PermissionDenied(std::string_view msg) { return {Code::kPermissionDenied, msg}; }
  static Status FailedPrecondition(std::string_view msg) {
    return {Code::kFailedPrecondition, msg};
  }
  static Status Internal(std::string_view msg) { return {Code::kInternal, msg}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsAlreadyExists() const { return code_ == Code::kAlreadyExists; }
  bool IsInvalidArgument() const { return code_ == Code::kInvalidArgument; }
  bool IsCorruption() const { return code_ == Code::kCorruption; }
  bool IsIOError() const { return code_ == Code::kIOError; }
  bool IsNoSpace() const { return code_ == Code::kNoSpace; }

  // "OK" or "<CodeName>: <message>".
  std::string ToString() const;

  // Returns a copy whose message is "<context>: <message>"; OK stays OK.
  Status WithContext(std::string_view context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline std::ostream& operator<<(std::ostream& os, const Status& s) { return os << s.ToString(); }

}  // namespace shoal

// Propagates a non-OK Status to the caller. For use inside functions returning Status or Result.
#define SHOAL_RETURN_IF_ERROR(expr)            \
  do {                                         \
    ::shoal::Status shoal_status_ = (expr);    \
    if (!shoal_status_.ok()) return shoal_status_; \
  } while (0)
