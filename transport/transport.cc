#include "transport/transport.h"

#include <fmt/format.h>

#include <cstring>
#include <future>

namespace shoal::transport {

Result<Payload> Transport::Call(uint32_t peer, uint16_t op, Payload payload,
                                std::chrono::milliseconds deadline) {
  std::promise<Result<Payload>> done;
  auto future = done.get_future();
  CallAsync(peer, op, std::move(payload), deadline,
            [&done](Result<Payload> r) { done.set_value(std::move(r)); });
  return future.get();
}

Status Transport::Bind(uint32_t self_index, uint32_t size) {
  if (self_index == self() && size == world_size()) return Status::OK();
  return Status::InvalidArgument(fmt::format(
      "endpoint of member {} of {} cannot become member {} of {}", self(), world_size(),
      self_index, size));
}

void Transport::CallGather(uint32_t peer, uint16_t op, Payload head,
                           std::span<const std::byte> body, std::chrono::milliseconds deadline,
                           Done done, Released released) {
  const size_t at = head.size();
  head.resize(at + body.size());
  if (!body.empty()) std::memcpy(head.data() + at, body.data(), body.size());
  released();
  CallAsync(peer, op, std::move(head), deadline, std::move(done));
}

Body Transport::BodyMemory(const BodySink& sink, size_t length) {
  Body body = sink(length);
  if (body.bytes.size() < length) {
    auto owned = std::make_shared<Payload>(length);
    body = Body{*owned, owned};
  }
  body.bytes = body.bytes.first(length);
  return body;
}

Body Transport::ReceiveBody(const BodySink& sink, std::span<const std::byte> bytes) {
  Body body = BodyMemory(sink, bytes.size());
  if (!bytes.empty()) std::memcpy(body.bytes.data(), bytes.data(), bytes.size());
  return body;
}

Reply Transport::ServeBody(size_t head_bytes, const BodySink& sink, const BodyHandler& handler,
                           uint32_t sender, std::span<const std::byte> payload) {
  if (payload.size() < head_bytes) {
    return Reply{Status::InvalidArgument(fmt::format(
        "request of {} bytes is shorter than its {}-byte head", payload.size(), head_bytes)),
                 {}};
  }
  return handler(sender, payload.first(head_bytes),
                 ReceiveBody(sink, payload.subspan(head_bytes)));
}

void Transport::SetBodyHandler(uint16_t op, size_t head_bytes, BodySink sink,
                               BodyHandler handler) {
  SetHandler(op, [head_bytes, sink = std::move(sink), handler = std::move(handler)](
                     uint32_t sender, std::span<const std::byte> payload) {
    return ServeBody(head_bytes, sink, handler, sender, payload);
  });
}

Status Transport::CheckFitsInto(size_t length, size_t skip, size_t into) {
  if (length < skip || length - skip > into) {
    return Status::Corruption(
        fmt::format("reply of {} bytes does not fit {} + {}", length, skip, into));
  }
  return Status::OK();
}

void Transport::EndIntoFromWhole(Result<Payload> whole, size_t skip, std::span<std::byte> into,
                                 const DoneInto& done) {
  if (!whole.ok()) return done(whole.status(), 0);
  Payload& p = *whole;
  if (Status s = CheckFitsInto(p.size(), skip, into.size()); !s.ok()) return done(std::move(s), 0);
  const size_t n = p.size() - skip;
  if (n != 0) std::memcpy(into.data(), p.data() + skip, n);
  p.resize(skip);
  done(std::move(p), n);
}

void Transport::CallInto(uint32_t peer, uint16_t op, Payload payload, size_t skip,
                         std::span<std::byte> into, std::chrono::milliseconds deadline,
                         DoneInto done) {
  CallAsync(peer, op, std::move(payload), deadline,
            [skip, into, done = std::move(done)](Result<Payload> r) {
              EndIntoFromWhole(std::move(r), skip, into, done);
            });
}

}  // namespace shoal::transport
