/**
 * `entrypoint` quoting exactly as PVE writes it (issue 15 item 9): pve-common's
 * `PVE::Cmd::to_string` runs Perl's String::ShellQuote over each word on its own. The
 * provider (OciImage's `entrypoint` output) and the sandbox share this one function; a
 * different quoting makes the Container show a diff on every run.
 */
import { expect } from "chai";
import { shellJoin, shellQuote } from "../../provider/proxmox/shellQuote";
import { shellJoin as sandboxShellJoin } from "../../sandbox/model/storage/ociArchive";

describe("shellQuote (String::ShellQuote, per word as PVE::Cmd::to_string)", () => {
  it("quotes like PVE for the cases users meet", () => {
    expect(shellQuote("--config=/etc/x")).to.equal("'--config=/etc/x'"); // '=' always quoted: each word is quoted as a first word
    expect(shellQuote("a!b")).to.equal("a!b"); // '!' is in String::ShellQuote's safe set
    expect(shellQuote("it's")).to.equal("'it'\\''s'");
    expect(shellQuote("")).to.equal("''");
    expect(shellQuote("/app/server")).to.equal("/app/server");
    expect(shellQuote("a b")).to.equal("'a b'");
    expect(shellQuote("x^y%z+w,v@u:t")).to.equal("x^y%z+w,v@u:t");
    expect(shellQuote("$HOME")).to.equal("'$HOME'");
    expect(shellQuote("'a")).to.equal("\\''a'"); // leading '' dropped
    expect(shellQuote("a''b")).to.equal("'a'\"''\"'b'"); // runs of quotes as '"''"'
    expect(shellQuote("''")).to.equal("\"''\"");
  });

  it("joins words with spaces, and the sandbox uses the same function", () => {
    const words = ["/bin/sh", "-c", "echo it's $X", "--k=v"];
    expect(shellJoin(words)).to.equal("/bin/sh -c 'echo it'\\''s $X' '--k=v'");
    expect(sandboxShellJoin).to.equal(shellJoin);
  });
});
