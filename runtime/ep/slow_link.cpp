// emulate_slow_link (transport.h) on its own: the in-process transport and the MPI provider library both
// use it.
#include <thread>

#include "ep/transport.h"

namespace moert::ep {

void emulate_slow_link(std::chrono::microseconds delay, double bytes_per_second, size_t bytes_to_others) {
  double s = std::chrono::duration<double>(delay).count();
  if (bytes_per_second > 0) s += static_cast<double>(bytes_to_others) / bytes_per_second;
  if (s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

void emulate_slow_link(std::chrono::microseconds delay, double bytes_per_second,
                       const std::vector<Bytes>& send, int self) {
  size_t bytes = 0;
  for (size_t r = 0; r < send.size(); ++r)
    if (static_cast<int>(r) != self) bytes += send[r].size();
  emulate_slow_link(delay, bytes_per_second, bytes);
}

}  // namespace moert::ep
