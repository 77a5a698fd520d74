// TFClient implementation: one libcurl POST per call.
#include "TFClient.h"

#include <curl/curl.h>

#include <cstdlib>
#include <iostream>
#include <mutex>

namespace {

// curl_global_init is not thread-safe: run it once, whatever thread calls first.
void globalInit() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t collect(char* data, size_t size, size_t nmemb, void* userp) {
    static_cast<std::string*>(userp)->append(data, size * nmemb);
    return size * nmemb;
}

std::string envToken() {
    for (const char* name : {"TFAAS_TOKEN", "JUPYTER_TOKEN"}) {
        const char* value = std::getenv(name);
        if (value != nullptr && *value != '\0') return value;
    }
    return "";
}

}  // namespace

tfaaspb::Predictions tfaasRequest(const std::string& url, const std::string& input) {
    tfaaspb::Predictions result;
    globalInit();
    CURL* curl = curl_easy_init();
    if (curl == nullptr) {
        std::cerr << "TFClient: cannot initialise libcurl" << std::endl;
        return result;
    }
    std::string body;
    struct curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Content-Type: application/octet-stream");
    const std::string token = envToken();
    if (!token.empty()) {
        const std::string auth = "Authorization: token " + token;
        headers = curl_slist_append(headers, auth.c_str());
    }
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, input.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(input.size()));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "TFClient-libcurl-agent");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // safe in threads
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    // As the original: a grid proxy serves as TLS client key and certificate.
    const char* proxy = std::getenv("X509_USER_PROXY");
    if (proxy != nullptr && *proxy != '\0') {
        curl_easy_setopt(curl, CURLOPT_SSLKEY, proxy);
        curl_easy_setopt(curl, CURLOPT_SSLCERT, proxy);
    }
    // No redirects: an unauthenticated request would follow one to the login page.
    const CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (rc != CURLE_OK) {
        std::cerr << "TFClient: request to " << url << " failed: " << curl_easy_strerror(rc)
                  << std::endl;
        return result;
    }
    if (status != 200) {
        // The server's errors are JSON: {"error": "..."}.
        std::cerr << "TFClient: HTTP " << status << " from " << url << ": " << body
                  << std::endl;
        return result;
    }
    if (!result.ParseFromString(body)) {
        std::cerr << "TFClient: failed to parse the answer of " << url << std::endl;
        result.Clear();
    }
    return result;
}

tfaaspb::Predictions predict(const std::string& url, const std::string& model,
                             const std::vector<std::string>& attrs,
                             const std::vector<float>& values) {
    if (attrs.size() != values.size()) {
        std::cerr << "TFClient: " << attrs.size() << " attributes but " << values.size()
                  << " values" << std::endl;
        return tfaaspb::Predictions();
    }
    tfaaspb::Row row;
    row.set_model(model);
    for (size_t i = 0; i < values.size(); ++i) {
        row.add_key(attrs[i]);
        row.add_value(values[i]);
    }
    std::string input;
    if (!row.SerializeToString(&input)) {
        std::cerr << "TFClient: cannot serialize the Row" << std::endl;
        return tfaaspb::Predictions();
    }
    return tfaasRequest(url, input);
}
