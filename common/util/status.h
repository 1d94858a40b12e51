// Errors as values across module boundaries.
//
// A Status is either OK or carries a code and a message a person can act on.
// Result<T> holds a T or a non-OK Status. Neither throws.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace stormbroker {

enum class StatusCode {
  kOk,
  kInvalidArgument,     // the input is wrong; retrying it unchanged fails again
  kNotFound,
  kPermissionDenied,
  kFailedPrecondition,  // the system is not in a state to do this (e.g. no token)
  kUnavailable,         // a transient fault; retrying later may succeed
  kUnauthenticated,
  kDeadlineExceeded,
  kResourceExhausted,   // a caller is over one of its limits; fewer at once will do
  kTooLarge,            // the request is larger than the broker takes; a smaller one will do
  kInternal,
};

class Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // When trying again makes sense (an upstream that asked to slow down);
  // the doors pass it on (Retry-After, grpc-retry-pushback-ms).
  std::optional<std::chrono::milliseconds> retry_after() const { return retry_after_; }
  Status&& WithRetryAfter(std::chrono::milliseconds after) && {
    retry_after_ = after;
    return std::move(*this);
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::optional<std::chrono::milliseconds> retry_after_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status PermissionDenied(std::string m) { return {StatusCode::kPermissionDenied, std::move(m)}; }
inline Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status TooLarge(std::string m) { return {StatusCode::kTooLarge, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}             // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}     // NOLINT: must not be OK

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace stormbroker
