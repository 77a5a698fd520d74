// TFClient: a small C++ client of the TFaaS /proto endpoint (libcurl + protobuf).
//
// The API of the original TFaaS C++ client, so existing code compiles unchanged:
//   tfaaspb::Predictions predict(url, model, attrs, values);
// where url is the full endpoint, e.g. http://localhost:8888/tfaas/proto.
//
// Beyond the original: the Jupyter token is read from the environment
// (TFAAS_TOKEN, then JUPYTER_TOKEN) and sent as "Authorization: token ...", and
// the HTTP status is checked: on anything but 200 the server's JSON error is
// printed on stderr and an empty Predictions is returned.
#ifndef TFAAS_TFCLIENT_H
#define TFAAS_TFCLIENT_H

#include <string>
#include <vector>

#include "tfaas.pb.h"

// POST a serialized tfaaspb.Row to url; answer the parsed tfaaspb.Predictions
// (empty on any error, which is reported on stderr).
tfaaspb::Predictions tfaasRequest(const std::string& url, const std::string& input);

// Build a tfaaspb.Row from attrs (keys) and values for model, and ask url.
tfaaspb::Predictions predict(const std::string& url, const std::string& model,
                             const std::vector<std::string>& attrs,
                             const std::vector<float>& values);

#endif  // TFAAS_TFCLIENT_H
