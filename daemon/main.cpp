// pooled: command line and start-up only. The work happens in Worker.
#include "config/config_loader.h"
#include "core/reloader.h"
#include "core/signals.h"
#include "core/systemd_notify.h"
#include "core/worker.h"
#include "observe/health_probe.h"

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <uv.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>

using namespace pooled;

namespace {

// Diagnostics go to stderr; stdout belongs to the access log.
void setupDiagnostics(const std::string& level) {
    auto logger = spdlog::stderr_logger_mt("pooled");
    // Under systemd the journal stamps every line itself (JOURNAL_STREAM says stderr is it).
    logger->set_pattern(std::getenv("JOURNAL_STREAM") ? "%l %v" : "%Y-%m-%dT%H:%M:%S.%f%z %l %v");
    spdlog::set_default_logger(logger);
    spdlog::set_level(spdlog::level::from_str(level));
}

bool applyListenOverride(Config& config, const std::string& listen) {
    size_t colon = listen.rfind(':');
    if (colon == std::string::npos)
        return false;
    std::string host = listen.substr(0, colon);
    if (host.size() > 1 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    int port = 0;
    try {
        port = std::stoi(listen.substr(colon + 1));
    } catch (const std::exception&) {
        return false;
    }
    if (port < 0 || port > 65535 || host.empty())
        return false;
    config.listeners.front().address = host;
    config.listeners.front().port = static_cast<uint16_t>(port);
    return true;
}

int checkConfig(const std::string& path) {
    try {
        Config config = loadConfigFile(path);
        std::printf("%s: ok (%zu listeners, %zu routes)\n", path.c_str(), config.listeners.size(),
                    config.routes.size());
        return 0;
    } catch (const ConfigError& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}

// `reload_config` reads the config again for SIGHUP (file plus command-line overrides).
int run(Config config, std::function<Config()> reload_config) {
    setupDiagnostics(config.log_level);
    // A peer that vanishes mid-write must be an error value, not a process kill.
    std::signal(SIGPIPE, SIG_IGN);
    uv_loop_t loop;
    uv_loop_init(&loop);
    int exit_code = 0;
    {
        auto shared = std::make_shared<const Config>(std::move(config));
        Worker worker(&loop, shared);
        const SystemdNotifier notifier = SystemdNotifier::fromEnvironment();
        SignalHandlers signals(&loop, [&worker, &notifier] {
            notifier.stopping("draining: " + worker.statusLine());
            worker.shutdown();
        });
        Reloader reloader(&loop, worker, notifier, std::move(reload_config));
        WatchdogTimer watchdog(&loop, notifier, [&worker, &notifier] {
            notifier.status(worker.statusLine());
        });
        try {
            worker.setInheritedListenFds(takeListenFds());
            worker.start();
            spdlog::info("pooled {} ready", POOLED_VERSION);
            notifier.ready(worker.statusLine());
        } catch (const std::exception& e) {
            spdlog::error("{}", e.what());
            exit_code = 1;
            worker.shutdown();
        }
        if (exit_code != 0)
            signals.close();
        uv_run(&loop, UV_RUN_DEFAULT);
        signals.close();
        reloader.close();
        watchdog.close();
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    uv_run(&loop, UV_RUN_DEFAULT); // close callbacks of whatever the Worker retired last
    if (uv_loop_close(&loop) != 0)
        spdlog::debug("event loop closed with handles still open");
    spdlog::info("stopped");
    return exit_code;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"pooled: a local HTTP connection-pooling proxy"};
    app.set_version_flag("--version", std::string("pooled ") + POOLED_VERSION);
    std::string config_path;
    std::string listen;
    std::string log_level;
    app.add_option("-c,--config", config_path, "YAML configuration file (default: embedded)");
    app.add_option("-l,--listen", listen, "Override the first listener, ADDR:PORT");
    app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical, off");
    std::string check_path;
    auto* check = app.add_subcommand("check-config", "Validate a configuration file and exit");
    check->add_option("file", check_path, "The file to check")->required();
    std::string probe_address = "127.0.0.1:9901";
    std::string probe_path = "/healthz";
    auto* health = app.add_subcommand(
        "healthcheck", "GET the admin endpoint; exit 0 on 200 (container and exec probes)");
    health->add_option("--admin", probe_address, "Admin address, IP:PORT (default 127.0.0.1:9901)");
    health->add_option("--path", probe_path, "/healthz (default) or /readyz");
    CLI11_PARSE(app, argc, argv);

    if (*health) {
        std::string error;
        if (probeHealth(probe_address, probe_path, 2000, error))
            return 0;
        std::fprintf(stderr, "unhealthy: %s\n", error.c_str());
        return 1;
    }

    if (*check)
        return checkConfig(check_path);

    Config config;
    try {
        config = config_path.empty() ? defaultConfig() : loadConfigFile(config_path);
    } catch (const ConfigError& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    if (!listen.empty() && !applyListenOverride(config, listen)) {
        std::fprintf(stderr, "--listen: expected ADDR:PORT, got '%s'\n", listen.c_str());
        return 1;
    }
    if (!log_level.empty()) {
        if (spdlog::level::from_str(log_level) == spdlog::level::off && log_level != "off") {
            std::fprintf(stderr, "--log-level: unknown level '%s'\n", log_level.c_str());
            return 1;
        }
        config.log_level = log_level;
    }
    auto reload_config = [config_path, listen, log_level] {
        Config next = config_path.empty() ? defaultConfig() : loadConfigFile(config_path);
        if (!listen.empty())
            applyListenOverride(next, listen);
        if (!log_level.empty())
            next.log_level = log_level;
        return next;
    };
    return run(std::move(config), reload_config);
}
