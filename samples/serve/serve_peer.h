// Whether the client of a request is still there, while the server waits for tokens to send. cpp-httplib
// (0.11) gives a handler no socket, so the connection is found once by its addresses among the process's
// descriptors, then polled for a hang-up (without reading: a pipelined next request stays unread).
#pragma once
#include <chrono>
#include <string>

namespace serve {

class PeerWatch {
 public:
  PeerWatch(std::string remote_addr, int remote_port, int local_port);
  // True once the peer has closed or reset the connection. Polls at most every 200 ms.
  bool gone();

 private:
  std::string remote_addr_;
  int remote_port_, local_port_;
  int fd_ = -2;  // -2: not looked up yet; -1: not found (never gone)
  std::chrono::steady_clock::time_point next_check_{};
};

}  // namespace serve
