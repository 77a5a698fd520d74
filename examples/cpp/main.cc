// The talk's example: 42 values 0..41 (named "0".."41") to a model, one line per class.
//
// usage: tfaas_example [URL] [MODEL]
//   URL   the /proto endpoint, or the tfaas base (".../tfaas" or ".../tfaas/"), or
//         $TFAAS_URL; default http://localhost:8888/tfaas/proto
//   MODEL the model name (default "vk")
// The token comes from $TFAAS_TOKEN or $JUPYTER_TOKEN.
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "TFClient.h"

namespace {

std::string protoUrl(std::string url) {
    const std::string suffix = "proto";
    if (url.size() >= suffix.size() &&
        url.compare(url.size() - suffix.size(), suffix.size(), suffix) == 0) {
        return url;
    }
    if (url.empty() || url.back() != '/') url += '/';
    return url + suffix;
}

}  // namespace

int main(int argc, char** argv) {
    std::string url = "http://localhost:8888/tfaas/proto";
    const char* env = std::getenv("TFAAS_URL");
    if (argc > 1) {
        url = argv[1];
    } else if (env != nullptr && *env != '\0') {
        url = env;
    }
    url = protoUrl(url);
    const std::string model = argc > 2 ? argv[2] : "vk";

    std::vector<std::string> attrs;
    std::vector<float> values;
    for (int i = 0; i < 42; i++) {  // the model of the talk has 42 inputs
        values.push_back(static_cast<float>(i));
        std::ostringstream oss;
        oss << i;
        attrs.push_back(oss.str());
    }
    auto res = predict(url, model, attrs, values);
    if (res.prediction_size() == 0) {
        std::cerr << "no predictions" << std::endl;
        return 1;
    }
    std::cout.precision(9);
    for (int i = 0; i < res.prediction_size(); i++) {
        const auto& p = res.prediction(i);
        std::cout << "class: " << p.label() << " probability: " << p.probability()
                  << std::endl;
    }
    google::protobuf::ShutdownProtobufLibrary();
    return 0;
}
