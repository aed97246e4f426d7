using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace DiffusersSharp.Tests.Server;

/// <summary>8 concurrent clients × 50 requests on the tiny model: every request answered (an image or 429), none lost or duplicated.</summary>
[Collection("server")]
public class ServerLoadTests(ServerFixture fixture, ITestOutputHelper log)
{
    private const int Clients = 8, RequestsPerClient = 50;

    [Fact]
    public async Task EveryRequestIsAnsweredOnceWithAnImageOr429()
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var answers = new ConcurrentBag<(string Prompt, int Status, long? Seed, string? RetryAfter)>();
        await Task.WhenAll(Enumerable.Range(0, Clients).Select(c => Task.Run(async () =>
        {
            for (int r = 0; r < RequestsPerClient; r++)
            {
                string prompt = $"load {c}-{r}";
                long seed = c * 1000 + r;
                var (status, body, response) = await ServerFixture.PostJson(fixture.Http, "/v1/images/generations", new JsonObject
                {
                    ["prompt"] = prompt, ["size"] = "16x16", ["steps"] = 1, ["guidance_scale"] = 1.0, ["seed"] = seed, ["response_format"] = "url",
                }.ToJsonString());
                long? answered = status == 200 ? (long)body!["seed"]! : null;
                if (status == 200) Assert.Single(body!["data"]!.AsArray());
                answers.Add((prompt, status, answered, response.Headers.RetryAfter?.Delta?.TotalSeconds.ToString()));
                if (status == 200) Assert.Equal(seed, answered);
            }
        })));
        log.WriteLine($"{answers.Count(a => a.Status == 200)} served, {answers.Count(a => a.Status == 429)} refused (429) in {clock.Elapsed.TotalSeconds:F1} s");
        Assert.Equal(Clients * RequestsPerClient, answers.Count);
        Assert.All(answers, a => Assert.True(a.Status is 200 or 429, $"{a.Prompt}: {a.Status}"));
        Assert.All(answers.Where(a => a.Status == 429), a => Assert.NotNull(a.RetryAfter));
        var served = answers.Where(a => a.Status == 200).Select(a => a.Prompt).ToHashSet();
        Assert.True(served.Count >= Clients, $"only {served.Count} requests were served");
        // each served request is in the history exactly once, as done; no refused one is
        var history = JsonNode.Parse(await fixture.Http.GetStringAsync("/v1/history?limit=500"))!["data"]!.AsArray()
            .Select(j => ((string)j!["parameters"]!["prompt"]!, (string)j["status"]!)).Where(j => j.Item1.StartsWith("load ", StringComparison.Ordinal)).ToList();
        Assert.Equal(served.Order(), history.Select(h => h.Item1).Order());
        Assert.All(history, h => Assert.Equal("done", h.Item2));
    }
}
