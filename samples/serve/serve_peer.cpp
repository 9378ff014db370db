#include "serve_peer.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cstdlib>

namespace serve {
namespace {

// The port and numeric address of a socket address (IPv4 or IPv6; IPv4-mapped written as IPv4).
bool describe(const sockaddr_storage& a, std::string* addr, int* port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(a);
    inet_ntop(AF_INET, &v4.sin_addr, buf, sizeof buf);
    *port = ntohs(v4.sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(a);
    inet_ntop(AF_INET6, &v6.sin6_addr, buf, sizeof buf);
    *port = ntohs(v6.sin6_port);
  } else {
    return false;
  }
  *addr = buf;
  if (addr->rfind("::ffff:", 0) == 0 && addr->find('.') != std::string::npos) *addr = addr->substr(7);
  return true;
}

int find_socket(const std::string& remote_addr, int remote_port, int local_port) {
  DIR* d = opendir("/proc/self/fd");
  if (!d) return -1;
  int found = -1;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (*end || end == e->d_name) continue;
    sockaddr_storage local{}, peer{};
    socklen_t ll = sizeof local, pl = sizeof peer;
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&local), &ll) != 0) continue;
    if (getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &pl) != 0) continue;
    std::string la, pa;
    int lp = 0, pp = 0;
    if (!describe(local, &la, &lp) || !describe(peer, &pa, &pp)) continue;
    if (lp == local_port && pp == remote_port && (pa == remote_addr || remote_addr.empty())) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(d);
  return found;
}

}  // namespace

PeerWatch::PeerWatch(std::string remote_addr, int remote_port, int local_port)
    : remote_addr_(std::move(remote_addr)), remote_port_(remote_port), local_port_(local_port) {
  if (remote_addr_.rfind("::ffff:", 0) == 0 && remote_addr_.find('.') != std::string::npos)
    remote_addr_ = remote_addr_.substr(7);
}

bool PeerWatch::gone() {
  const auto now = std::chrono::steady_clock::now();
  if (now < next_check_) return false;
  next_check_ = now + std::chrono::milliseconds(200);
  if (fd_ == -2) fd_ = find_socket(remote_addr_, remote_port_, local_port_);
  if (fd_ < 0) return false;
  pollfd p{fd_, POLLRDHUP, 0};
  if (poll(&p, 1, 0) <= 0) return false;
  return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

}  // namespace serve
