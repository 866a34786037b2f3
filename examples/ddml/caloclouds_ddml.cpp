// caloclouds_ddml: load a caloclouds TorchScript export the way DDML's TorchInference does and
// draw showers with the DDML CaloClouds calling convention.
//
//   forward(energy_gev, theta_deg, phi_deg), each a (1, 1) float32 tensor
//   -> 1-D float32 tensor: 4*n_layers header entries (points of layer l at index 4*l, zeros
//      between), then x_mm, y_mm, layer, e_MeV per point, grouped by ascending layer.
//
// For each energy it prints the mean points per layer, the mean energy sum (MeV), the sampling
// fraction, whether every output was consistent (header counts = points, layers grouped as the
// header says, zeros between counts) and the time per shower (one forward call): the median and
// mean wall-clock milliseconds, and the median milliseconds of this thread's CPU time (user +
// system, page faults included; with one intra-op thread all of the call's work runs in this
// thread, and on a shared machine this time does not count the waits for a core), and the mean
// number of minor page faults per call (memory the call got anew from the system; -1 where the
// system does not count them per thread). For each energy it also prints the energy-weighted centre
// of each layer (x and y in mm, the showers pooled) and each layer's mean energy: an angled shower's
// centre moves by tan(theta) per mm of depth along phi (campaign/export_angles.py measures it).
//
// usage: caloclouds_ddml MODEL.pt [--energies E1 E2 ...] [-n N] [--seed S] [--threads T]
//                                 [--theta DEG] [--phi DEG] [--warmup W] [--layer-sums FILE]
//   --layer-sums FILE: also write one line per timed shower: its energy (GeV), then for each layer
//                the sums of e (MeV), e*x and e*y (MeV mm), space-separated.
//   --theta, --phi: the direction of incidence in degrees, as DDML's CaloCloudsTwoAngleModel passes
//                it: theta = acos(d_z) with z into the calorimeter (0, the default, is normal
//                incidence), phi = atan2(d_y, d_x) (default 0; any value, the model wraps it). A
//                normal-incidence model ignores them; a direction-aware one clamps theta into its
//                trained range (the "angles" extra file). Before the export used the angles the
//                default theta was 90, which a normal-incidence model ignored.
//   --threads T: libtorch's intra-op threads (default 1, one per Geant4 worker thread); 0 leaves
//                libtorch's own default (OMP_NUM_THREADS, at most one per core), as a host that never
//                calls at::set_num_threads gets.

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <sys/resource.h>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <string>
#include <vector>

namespace {

struct Options {
  std::string model;
  std::vector<double> energies_gev{10.0, 50.0, 90.0};
  int n_showers = 100;
  int warmup = 5;
  int threads = 1;
  long seed = 0;
  double theta_deg = 0.0;  // normal incidence (DDML: theta = acos(d_z), z into the calorimeter)
  double phi_deg = 0.0;
  std::string layer_sums_file;  // empty: none written
};

[[noreturn]] void usage_error(const std::string& msg) {
  std::cerr << "caloclouds_ddml: error: " << msg << "\n"
            << "usage: caloclouds_ddml MODEL.pt [--energies E1 E2 ...] [-n N] [--seed S] "
               "[--threads T] [--theta DEG] [--phi DEG] [--warmup W] [--layer-sums FILE]\n";
  std::exit(2);
}

// A finite number, or a usage error naming the option.
double number(const std::string& option, const std::string& text) {
  size_t used = 0;
  double v = 0.0;
  try {
    v = std::stod(text, &used);
  } catch (...) {
    used = 0;
  }
  if (used != text.size() || !std::isfinite(v)) usage_error(option + " needs a finite number, got '" + text + "'");
  return v;
}

Options parse(int argc, char** argv) {
  Options opt;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) usage_error(a + " needs a value");
      return args[++i];
    };
    if (a == "--energies") {
      opt.energies_gev.clear();
      while (i + 1 < args.size() && args[i + 1].rfind("-", 0) != 0) opt.energies_gev.push_back(std::stod(args[++i]));
      if (opt.energies_gev.empty()) usage_error("--energies needs at least one value");
    } else if (a == "-n") {
      opt.n_showers = std::stoi(value());
    } else if (a == "--seed") {
      opt.seed = std::stol(value());
    } else if (a == "--threads") {
      opt.threads = std::stoi(value());
    } else if (a == "--theta") {
      opt.theta_deg = number(a, value());
    } else if (a == "--phi") {
      opt.phi_deg = number(a, value());
    } else if (a == "--layer-sums") {
      opt.layer_sums_file = value();
    } else if (a == "--warmup") {
      opt.warmup = std::stoi(value());
    } else if (!a.empty() && a[0] == '-') {
      usage_error("unknown option " + a);
    } else if (opt.model.empty()) {
      opt.model = a;
    } else {
      usage_error("more than one model file given");
    }
  }
  if (opt.model.empty()) usage_error("no model file given");
  if (opt.n_showers < 1) usage_error("-n must be >= 1");
  if (opt.threads < 0) usage_error("--threads must be >= 0 (0: libtorch's default)");
  return opt;
}

// Checks one output against the convention; returns false (and says why) when it breaks it.
// On success also sets each layer's sums of e, e*x and e*y (MeV, MeV mm) in layer_sums (3 per layer).
bool check_output(const torch::Tensor& out, int64_t n_layers, std::vector<int64_t>& counts,
                  double& energy_sum_mev, std::vector<double>& layer_sums) {
  if (out.dim() != 1 || out.scalar_type() != torch::kFloat32 || out.size(0) < 4 * n_layers ||
      (out.size(0) - 4 * n_layers) % 4 != 0) {
    std::cerr << "output is not a 1-D float32 tensor of 4*n_layers + 4*points entries\n";
    return false;
  }
  auto header = out.slice(0, 0, 4 * n_layers).reshape({n_layers, 4});
  if (header.slice(1, 1, 4).abs().sum().item<float>() != 0.0f) {
    std::cerr << "header entries between the counts are not zero\n";
    return false;
  }
  auto points = out.slice(0, 4 * n_layers).reshape({-1, 4});
  auto count_tensor = header.select(1, 0).to(torch::kLong);
  int64_t total = count_tensor.sum().item<int64_t>();
  if (total != points.size(0)) {
    std::cerr << "header counts " << total << " points but " << points.size(0) << " follow\n";
    return false;
  }
  auto expected = torch::repeat_interleave(torch::arange(n_layers, torch::kLong), count_tensor);
  if (!torch::equal(points.select(1, 2).to(torch::kLong), expected)) {
    std::cerr << "points are not grouped by ascending layer as the header says\n";
    return false;
  }
  counts.assign(count_tensor.data_ptr<int64_t>(), count_tensor.data_ptr<int64_t>() + n_layers);
  energy_sum_mev = points.select(1, 3).sum().item<double>();
  layer_sums.assign(3 * static_cast<size_t>(n_layers), 0.0);
  auto p = points.to(torch::kDouble).contiguous();
  const double* row = p.data_ptr<double>();
  for (int64_t i = 0; i < p.size(0); ++i, row += 4) {  // x, y, layer, e
    const auto l = static_cast<size_t>(row[2]);
    layer_sums[3 * l] += row[3];
    layer_sums[3 * l + 1] += row[3] * row[0];
    layer_sums[3 * l + 2] += row[3] * row[1];
  }
  return true;
}

double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return 1e3 * static_cast<double>(ts.tv_sec) + 1e-6 * static_cast<double>(ts.tv_nsec);
}

// Minor page faults of this thread so far, or -1 where they are not counted per thread.
long thread_minor_faults() {
#ifdef RUSAGE_THREAD
  rusage usage{};
  if (getrusage(RUSAGE_THREAD, &usage) == 0) return usage.ru_minflt;
#endif
  return -1;
}

double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

int64_t read_n_layers(const std::string& text) {
  // the "n_layers" extra file holds a JSON integer
  try {
    return std::stoll(text);
  } catch (...) {
    return -1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options opt = parse(argc, argv);
  if (opt.threads > 0) at::set_num_threads(opt.threads);
  torch::jit::ExtraFilesMap extra{{"n_layers", ""}, {"version", ""}, {"energy_range_gev", ""}};
  torch::jit::script::Module module;
  try {
    module = torch::jit::load(opt.model, torch::kCPU, extra);
  } catch (const c10::Error& e) {
    std::cerr << "caloclouds_ddml: error: " << opt.model << ": cannot load the TorchScript file ("
              << e.what_without_backtrace() << ")\n";
    return 2;
  }
  module.eval();
  const int64_t n_layers = read_n_layers(extra["n_layers"]);
  if (n_layers < 1) {
    std::cerr << "caloclouds_ddml: error: " << opt.model << ": no n_layers extra file (not a caloclouds export?)\n";
    return 2;
  }
  std::cout << "model " << opt.model << ": n_layers " << n_layers << ", version " << extra["version"]
            << ", energy range " << extra["energy_range_gev"] << " GeV, " << at::get_num_threads()
            << " thread(s)\n";
  std::printf("ANGLES theta_deg=%g phi_deg=%g\n", opt.theta_deg, opt.phi_deg);
  at::manual_seed(static_cast<uint64_t>(opt.seed));
  c10::InferenceMode inference_mode;
  std::ofstream sums_out;
  if (!opt.layer_sums_file.empty()) {
    sums_out.open(opt.layer_sums_file);
    if (!sums_out) {
      std::cerr << "caloclouds_ddml: error: cannot write --layer-sums " << opt.layer_sums_file << "\n";
      return 2;
    }
    sums_out.precision(9);
  }
  bool all_ok = true;
  for (double energy : opt.energies_gev) {
    std::vector<torch::jit::IValue> inputs{torch::full({1, 1}, energy, torch::kFloat32),
                                           torch::full({1, 1}, opt.theta_deg, torch::kFloat32),
                                           torch::full({1, 1}, opt.phi_deg, torch::kFloat32)};
    std::vector<double> mean_counts(n_layers, 0.0), ms, cpu_ms, layer_sums(3 * n_layers, 0.0), shower_sums;
    double mean_points = 0.0, mean_energy = 0.0, faults = 0.0, fraction_sq = 0.0;
    bool ok = true;
    for (int i = 0; i < opt.warmup + opt.n_showers; ++i) {
      const long f0 = thread_minor_faults();
      const double c0 = thread_cpu_ms();
      auto t0 = std::chrono::steady_clock::now();
      torch::Tensor out;
      try {
        out = module.forward(inputs).toTensor();
      } catch (const c10::Error& e) {
        std::cerr << "caloclouds_ddml: error: forward failed at " << energy << " GeV: " << e.what_without_backtrace() << "\n";
        return 1;
      }
      auto t1 = std::chrono::steady_clock::now();
      const double c1 = thread_cpu_ms();
      const long f1 = thread_minor_faults();
      if (i < opt.warmup) continue;
      faults += f0 < 0 ? -1.0 / opt.n_showers : static_cast<double>(f1 - f0) / opt.n_showers;
      ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      cpu_ms.push_back(c1 - c0);
      std::vector<int64_t> counts;
      double esum = 0.0;
      if (!check_output(out, n_layers, counts, esum, shower_sums)) {
        ok = false;
        break;
      }
      for (size_t k = 0; k < layer_sums.size(); ++k) layer_sums[k] += shower_sums[k];
      if (sums_out.is_open()) {
        sums_out << energy;
        for (double v : shower_sums) sums_out << ' ' << v;
        sums_out << '\n';
      }
      fraction_sq += (esum / (1000.0 * energy)) * (esum / (1000.0 * energy));
      for (int64_t l = 0; l < n_layers; ++l) mean_counts[l] += static_cast<double>(counts[l]) / opt.n_showers;
      mean_points += static_cast<double>(out.size(0) / 4 - n_layers) / opt.n_showers;
      mean_energy += esum / opt.n_showers;
    }
    all_ok = all_ok && ok;
    const double mean_ms = ms.empty() ? 0.0 : std::accumulate(ms.begin(), ms.end(), 0.0) / ms.size();
    std::printf("RESULT energy_gev=%g showers=%d mean_points=%.2f mean_energy_mev=%.4f sampling_fraction=%.6f "
                "median_ms=%.3f mean_ms=%.3f cpu_median_ms=%.3f faults_per_call=%.1f consistent=%d\n",
                energy, opt.n_showers, mean_points, mean_energy, mean_energy / (1000.0 * energy), median(ms), mean_ms,
                median(cpu_ms), faults, ok ? 1 : 0);
    const double fraction = mean_energy / (1000.0 * energy);
    const double n = static_cast<double>(opt.n_showers);
    const double spread = n > 1 ? std::sqrt(std::max(0.0, (fraction_sq - n * fraction * fraction) / (n - 1))) : 0.0;
    std::printf("SAMPLING energy_gev=%g sampling_fraction=%.6f standard_error=%.6f\n", energy, fraction,
                spread / std::sqrt(n));
    std::printf("LAYERS energy_gev=%g", energy);
    for (double c : mean_counts) std::printf(" %.2f", c);
    std::printf("\n");
    // energy-weighted centre of each layer, the showers pooled (nan in a layer without energy)
    const char* names[3] = {"LAYER_ENERGY_MEV", "CENTRE_X_MM", "CENTRE_Y_MM"};
    for (int k = 0; k < 3; ++k) {
      std::printf("%s energy_gev=%g", names[k], energy);
      for (int64_t l = 0; l < n_layers; ++l) {
        const double e = layer_sums[3 * l];
        const double v = k == 0 ? e / opt.n_showers : (e > 0 ? layer_sums[3 * l + k] / e : std::nan(""));
        std::printf(" %.6g", v);
      }
      std::printf("\n");
    }
  }
  return all_ok ? 0 : 1;
}
