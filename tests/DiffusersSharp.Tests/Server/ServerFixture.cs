using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using DiffusersSharp.Server;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Server;

/// <summary>One real Kestrel server on 127.0.0.1 (a free port) serving tests/golden/tiny-sd, shared by the server tests.</summary>
public sealed class ServerFixture : IAsyncLifetime
{
    private readonly TempDir _data = new();

    /// <summary>The server (2 steps by default, queue of 4, a preview every step).</summary>
    public DiffusersServer Server { get; private set; } = null!;

    /// <summary>A client whose base address is the server's.</summary>
    public HttpClient Http { get; private set; } = null!;

    public string DataDir => _data.Path;

    public static ServerOptions Options(string dataDir) => new()
    {
        Models = [Golden.Path("tiny-sd")], Host = "127.0.0.1", Port = 0, DataDir = dataDir, DefaultSteps = 2, MaxQueue = 4,
        PreviewEvery = 1, Preload = false, LoraDir = Golden.Path("tiny-sd-lora"),
    };

    public async Task InitializeAsync()
    {
        Server = DiffusersServer.Create(Options(_data.Path));
        await Server.StartAsync();
        Http = new HttpClient { BaseAddress = Server.Address, Timeout = TimeSpan.FromSeconds(120) };
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
        _data.Dispose();
    }

    /// <summary>POSTs JSON text; returns the status and the parsed body.</summary>
    public static async Task<(int Status, JsonNode? Body, HttpResponseMessage Response)> PostJson(HttpClient http, string path, string json)
    {
        var response = await http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
        string text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length > 0 ? JsonNode.Parse(text) : null, response);
    }

    /// <summary>Reads a job's server-sent events until its final one (or <paramref name="stopAfter"/> says stop).</summary>
    public static async Task<List<(string Type, JsonNode Data)>> ReadEvents(HttpClient http, string id, Func<string, JsonNode, bool>? stopAfter = null)
    {
        var events = new List<(string, JsonNode)>();
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/jobs/{id}/events");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        string? type = null;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("event: ", StringComparison.Ordinal)) type = line[7..];
            else if (line.StartsWith("data: ", StringComparison.Ordinal) && type is not null)
            {
                var data = JsonNode.Parse(line[6..])!;
                events.Add((type, data));
                if (type is "done" or "failed" or "cancelled" || (stopAfter?.Invoke(type, data) ?? false)) break;
            }
        }
        return events;
    }
}

/// <summary>The server tests share one server and run one after another.</summary>
[CollectionDefinition("server")]
public sealed class ServerCollection : ICollectionFixture<ServerFixture>;
