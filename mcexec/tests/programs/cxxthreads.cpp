// C++ threads on the LWK: std::thread with an atomic counter, a
// std::mutex-protected map, std::async and a std::condition_variable.
#include <atomic>
#include <condition_variable>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

int main() {
    std::atomic<long> counter{0};
    std::mutex m;
    std::map<int, int> seen;
    std::vector<std::thread> ts;
    for (int i = 0; i < 3; i++)
        ts.emplace_back([&, i] {
            for (int j = 0; j < 50000; j++) counter++;
            std::lock_guard<std::mutex> g(m);
            seen[i] = i;
        });
    for (auto &t : ts) t.join();
    auto f = std::async(std::launch::async, [] { return 6 * 7; });
    std::condition_variable cv;
    bool ready = false;
    std::thread waiter([&] {
        std::unique_lock<std::mutex> l(m);
        cv.wait(l, [&] { return ready; });
    });
    {
        std::lock_guard<std::mutex> g(m);
        ready = true;
    }
    cv.notify_one();
    waiter.join();
    std::cout << "atomic " << counter << " map " << seen.size() << " async " << f.get() << std::endl;
    return 0;
}
