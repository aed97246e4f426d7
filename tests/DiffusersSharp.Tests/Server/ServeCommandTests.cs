using System.Text.Json.Nodes;
using DiffusersSharp.Cli;
using DiffusersSharp.Tests.Cli;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Server;

/// <summary><c>diffusers serve</c>: its refusals, and a run that answers on the port it was given until cancelled.</summary>
public class ServeCommandTests
{
    [Fact]
    public void ANonLoopbackHostWithoutAKeyIsRefused()
    {
        var (code, _, stderr) = CliRun.Run("serve", "--model", Golden.Path("tiny-sd"), "--host", "0.0.0.0", "--data-dir", "unused");
        Assert.Equal(CliApp.UserError, code);
        Assert.Equal("error: --host 0.0.0.0: is reachable from other machines; refusing to serve it without --api-key (clients then send 'Authorization: Bearer KEY')",
            stderr.Trim());
    }

    [Fact]
    public void WithoutAModelItSaysSo()
    {
        var (code, _, stderr) = CliRun.Run("serve");
        Assert.Equal(CliApp.UserError, code);
        Assert.Contains("--model", stderr);
    }

    [Fact]
    public async Task ItServesUntilCancelled()
    {
        using var data = new TempDir();
        int port = FreePort();
        using var cts = new CancellationTokenSource();
        using var o = new StringWriter();
        using var e = new StringWriter();
        var run = Task.Run(() => CliApp.Run(["serve", "--model", Golden.Path("tiny-sd"), "--port", port.ToString(), "--data-dir", data.Path,
            "--max-queue", "2", "--memory-budget", "1"], o, e, cancellationToken: cts.Token));
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        JsonNode? models = null;
        for (int i = 0; i < 200 && models is null; i++)
        {
            try { models = JsonNode.Parse(await http.GetStringAsync("/v1/models")); }
            catch (HttpRequestException) { await Task.Delay(100); }
        }
        Assert.Equal("tiny-sd", (string?)models!["data"]![0]!["id"]);
        cts.Cancel();
        Assert.Equal(CliApp.Ok, await run);
        Assert.Contains($"diffusers serve: http://127.0.0.1:{port}/", o.ToString());
    }

    private static int FreePort()
    {
        using var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        return ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
    }
}
