import { expect } from "chai";
import { captureLogger, registerSecret, scrubSecrets, metrics, clearRegisteredSecrets } from "../../provider/logging";

describe("logging core", () => {
  afterEach(() => clearRegisteredSecrets());

  it("masks secret-named fields and registered secret values anywhere in a line", () => {
    const cap = captureLogger();
    registerSecret("s3cr3t-token-value");
    cap.logger.info({ headers: { authorization: "PVEAPIToken=root@pam!ci=abc" }, password: "hunter22", note: "x s3cr3t-token-value y" }, "request");
    const text = cap.text();
    expect(text).to.not.include("hunter22");
    expect(text).to.not.include("s3cr3t-token-value");
    expect(text).to.not.include("PVEAPIToken=root@pam!ci=abc");
    expect(cap.records[0].msg).to.equal("request");
  });

  it("masks credential shapes in free text", () => {
    expect(scrubSecrets("Authorization: PVEAPIToken=root@pam!ci=1234-5678")).to.equal("Authorization: PVEAPIToken=root@pam!ci=[REDACTED]");
    expect(scrubSecrets("ticket PVE:root@pam:67F0A1B2::abcDEF+/=")).to.equal("ticket [REDACTED]");
  });

  it("exports Prometheus text", () => {
    metrics.reset();
    metrics.recordApiCall({ endpoint: "/nodes/{node}/lxc", method: "POST", status: 200, durationMs: 12 });
    const text = metrics.toPrometheus();
    expect(text).to.match(/^pve_api_requests_total\{endpoint="\/nodes\/\{node\}\/lxc",method="POST",status="200"\} 1$/m);
    expect(text).to.match(/^pve_api_request_duration_seconds_count\{.*\} 1$/m);
  });
});
