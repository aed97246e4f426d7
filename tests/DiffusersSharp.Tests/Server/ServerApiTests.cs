using System.Net.Http.Json;
using System.Net;
using System.Text.Json.Nodes;
using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Server;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Server;

/// <summary>The HTTP API through a real Kestrel: bad requests, jobs and their events, cancelling, restart, same bytes as the library.</summary>
[Collection("server")]
public class ServerApiTests(ServerFixture fixture, Xunit.Abstractions.ITestOutputHelper log)
{
    private HttpClient Http => fixture.Http;

    [Theory]
    [InlineData("{\"prompt\": \"a cat\"", "the request body is not valid JSON: ")]
    [InlineData("[1, 2]", "the request body must be a JSON object")]
    [InlineData("{\"n\": 1}", "prompt: is required")]
    [InlineData("{\"prompt\": \"a cat\", \"size\": \"60x64\"}", "size: width and height must be multiples of 8 between 8 and 4096, got 60x64")]
    [InlineData("{\"prompt\": \"a cat\", \"size\": \"big\"}", "size: expected WIDTHxHEIGHT (e.g. 512x512), got 'big'")]
    [InlineData("{\"prompt\": \"a cat\", \"n\": 5}", "n: must be between 1 and 4, got 5")]
    [InlineData("{\"prompt\": \"a cat\", \"model\": \"sd-xl\"}", "model: unknown model 'sd-xl'; served models: tiny-sd")]
    [InlineData("{\"prompt\": \"a cat\", \"steps\": \"many\"}", "steps: must be an integer")]
    [InlineData("{\"prompt\": \"a cat\", \"response_format\": \"jpeg\"}", "response_format: must be 'url' or 'b64_json', got 'jpeg'")]
    [InlineData("{\"prompt\": \"a cat\", \"scheduler\": \"fast\"}", "scheduler: unknown scheduler 'fast'; use a class (")]
    [InlineData("{\"prompt\": \"a cat\", \"loras\": {\"style\": 0.7}}", "loras: no LoRA named 'style' in the server's LoRA directory (")]
    public async Task BadRequestsGet400InOpenAisErrorShape(string body, string message)
    {
        var (status, json, _) = await ServerFixture.PostJson(Http, "/v1/images/generations", body);
        Assert.Equal(400, status);
        Assert.Equal("invalid_request_error", (string?)json!["error"]!["type"]);
        Assert.StartsWith(message, (string?)json["error"]!["message"]);
    }

    [Fact]
    public async Task ATenMegabytePromptGets400()
    {
        string prompt = new('a', 10 << 20);
        var (status, json, _) = await ServerFixture.PostJson(Http, "/v1/images/generations", new JsonObject { ["prompt"] = prompt }.ToJsonString());
        Assert.Equal(400, status);
        Assert.Equal("prompt: is 10485760 characters long; the limit is 10000", (string?)json!["error"]!["message"]);
    }

    [Fact]
    public async Task AJobStreamsQueuedStepsPreviewsAndTheResult()
    {
        var (status, job, _) = await ServerFixture.PostJson(Http, "/v1/jobs", "{\"prompt\": \"a cat\", \"size\": \"64x64\", \"steps\": 3, \"seed\": 9, \"scheduler\": \"ddim\"}");
        Assert.Equal(202, status);
        string id = (string)job!["id"]!;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var events = await ServerFixture.ReadEvents(Http, id);
        foreach (var (t, d) in events) log.WriteLine($"{t}: {(t == "preview" ? "" : d.ToJsonString())}");
        log.WriteLine($"events read in {clock.Elapsed.TotalSeconds:F2} s");
        var types = events.Select(e => e.Type).ToList();
        Assert.Equal("queued", types[0]);
        Assert.Equal(["step", "step", "step"], types.Where(t => t == "step"));
        Assert.Equal([1, 2, 3], events.Where(e => e.Type == "step").Select(e => (int)e.Data["step"]!));
        Assert.Equal(2, types.Count(t => t == "preview"));   // steps 1 and 2; the last step's image is the result
        Assert.Equal("done", types[^1]);
        var done = events[^1].Data;
        Assert.Equal(9, (long)done["seed"]!);
        var png = await Http.GetByteArrayAsync((string)done["images"]![0]!);
        Assert.Equal(64, Image.Decode(png).Width);
        var polled = JsonNode.Parse(await Http.GetStringAsync($"/v1/jobs/{id}"))!;
        Assert.Equal("done", (string?)polled["status"]);
        Assert.Equal("a cat", (string?)polled["parameters"]!["prompt"]);
    }

    [Fact]
    public async Task CancellingFreesTheWorkerWithinOneStep()
    {
        var (_, job, _) = await ServerFixture.PostJson(Http, "/v1/jobs", "{\"prompt\": \"slow\", \"size\": \"64x64\", \"steps\": 500, \"seed\": 1}");
        string id = (string)job!["id"]!;
        var before = await ServerFixture.ReadEvents(Http, id, (type, data) => type == "step" && (int)data["step"]! >= 2);
        int seen = (int)before[^1].Data["step"]!;
        var cancel = await Http.DeleteAsync($"/v1/jobs/{id}");
        Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
        // the answer carries the job's last step event, read after the cancel (steps ran meanwhile: the client's round trip)
        var answer = JsonNode.Parse(await cancel.Content.ReadAsStringAsync())!;
        Assert.Equal(id, (string?)answer["id"]);
        Assert.Contains((string?)answer["status"], new[] { "cancelling", "cancelled" });   // cancelled: the run ended before the answer
        int atCancel = (int)answer["progress"]!["step"]!;
        Assert.InRange(atCancel, seen, 499);
        var events = await ServerFixture.ReadEvents(Http, id);
        Assert.Equal("cancelled", events[^1].Type);
        // The token is checked after each step's work, before its step event, and before the next step: a step in flight
        // when the cancel comes is dropped, and only a cancel between that check and the event lets one more event out.
        // (Measured: none in 16 runs, cancelled at step 2 or 30, alone, in the class, and beside two busy loops.)
        int lastStep = events.Where(e => e.Type == "step").Select(e => (int)e.Data["step"]!).Max();
        Assert.True(lastStep <= atCancel + 1, $"cancelled at step {atCancel}, ran to step {lastStep}");
        // the worker takes the next job at once
        var (status, next, _) = await ServerFixture.PostJson(Http, "/v1/images/generations", "{\"prompt\": \"next\", \"size\": \"32x32\", \"steps\": 1, \"response_format\": \"b64_json\"}");
        Assert.Equal(200, status);
        Assert.NotNull(next!["data"]![0]!["b64_json"]);
    }

    [Fact]
    public async Task CancellingAQueuedJobFreesItsSlotAtOnce()
    {
        // a job held running (900 steps at 64x64, cancelled at the end) keeps the fixture's queue of 4 full
        var (_, held, _) = await ServerFixture.PostJson(Http, "/v1/jobs", "{\"prompt\": \"held\", \"size\": \"64x64\", \"steps\": 900, \"seed\": 3, \"scheduler\": \"ddim\"}");
        string heldId = (string)held!["id"]!;
        var queued = new List<string>();
        try
        {
            var started = await ServerFixture.ReadEvents(Http, heldId, (type, _) => type == "step");
            Assert.True(started[^1].Type == "step", started[^1].Data.ToJsonString());
            const string Small = "{\"prompt\": \"waiting\", \"size\": \"32x32\", \"steps\": 1, \"seed\": 5}";
            for (int i = 0; i < 4; i++)
            {
                var (s, body, _) = await ServerFixture.PostJson(Http, "/v1/jobs", Small);
                Assert.Equal(202, s);
                queued.Add((string)body!["id"]!);
            }
            var (full, _, refused) = await ServerFixture.PostJson(Http, "/v1/jobs", Small);
            Assert.Equal(429, full);
            Assert.NotNull(refused.Headers.RetryAfter);

            // the second waiting job leaves the queue at once: cancelled, in the history, its stream ends with 'cancelled'
            var cancel = await Http.DeleteAsync($"/v1/jobs/{queued[1]}");
            Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
            Assert.Equal("cancelled", (string?)JsonNode.Parse(await cancel.Content.ReadAsStringAsync())!["status"]);
            Assert.Equal("cancelled", (string?)JsonNode.Parse(await Http.GetStringAsync($"/v1/jobs/{queued[1]}"))!["status"]);
            var cancelledEvents = await ServerFixture.ReadEvents(Http, queued[1]);
            Assert.Equal("cancelled", cancelledEvents[^1].Type);
            Assert.DoesNotContain(cancelledEvents, e => e.Type is "started" or "step");

            // the jobs behind it move up (the running job counts as one ahead) ...
            var third = await ServerFixture.ReadEvents(Http, queued[2], (type, data) => type == "queued" && (int)data["position"]! == 2);
            Assert.Equal([3, 2], third.Where(e => e.Type == "queued").Select(e => (int)e.Data["position"]!));
            var fourth = await ServerFixture.ReadEvents(Http, queued[3], (type, data) => type == "queued" && (int)data["position"]! == 3);
            Assert.Equal([4, 3], fourth.Where(e => e.Type == "queued").Select(e => (int)e.Data["position"]!));

            // ... and the freed slot takes a new job while the held one still runs
            var (again, next, _) = await ServerFixture.PostJson(Http, "/v1/jobs", Small);
            Assert.Equal(202, again);
            queued.Add((string)next!["id"]!);
            Assert.Equal("running", (string?)JsonNode.Parse(await Http.GetStringAsync($"/v1/jobs/{heldId}"))!["status"]);
        }
        finally
        {
            await Http.DeleteAsync($"/v1/jobs/{heldId}");
        }
        Assert.Equal("cancelled", (await ServerFixture.ReadEvents(Http, heldId))[^1].Type);
        foreach (string id in new[] { 0, 2, 3, 4 }.Select(i => queued[i]))
        {
            var done = (await ServerFixture.ReadEvents(Http, id))[^1];
            Assert.Equal("done", done.Type);
            Assert.Equal(32, Image.Decode(await Http.GetByteArrayAsync((string)done.Data["images"]![0]!)).Width);
        }
    }

    [Fact]
    public async Task AClientLeavingMidStreamDoesNotStallTheWorker()
    {
        var (_, job, _) = await ServerFixture.PostJson(Http, "/v1/jobs", "{\"prompt\": \"left\", \"size\": \"64x64\", \"steps\": 6, \"seed\": 2}");
        string id = (string)job!["id"]!;
        await ServerFixture.ReadEvents(Http, id, (type, _) => type == "step");   // reads one step, then drops the connection
        for (int i = 0; i < 600; i++)
        {
            var polled = JsonNode.Parse(await Http.GetStringAsync($"/v1/jobs/{id}"))!;
            if ((string?)polled["status"] == "done") return;
            await Task.Delay(50);
        }
        Assert.Fail("the job did not finish after its client left");
    }

    [Fact]
    public async Task TheLorasOfLoraDirAreListedAndAppliedPerRequest()
    {
        var list = await Http.GetFromJsonAsync<JsonObject>("/v1/schedulers");
        Assert.Equal(["kohya"], list!["loras"]!.AsArray().Select(n => (string)n!).ToArray());
        byte[] expected;
        using (var pipe = StableDiffusionPipeline.FromPretrained(Golden.Path("tiny-sd")))
        {
            pipe.LoadLoraWeights(Golden.Path("tiny-sd-lora", "kohya.safetensors"), adapterName: "kohya");
            pipe.SetAdapters(["kohya"], [0.5]);
            using var r = pipe.Generate("a blue car", "dark", guidanceScale: 6.0, height: 64, width: 64, numInferenceSteps: 2, seed: 11);
            expected = r.Images[0].ToPng();
        }
        var (status, body, _) = await ServerFixture.PostJson(Http, "/v1/images/generations",
            "{\"prompt\": \"a blue car\", \"negative_prompt\": \"dark\", \"guidance_scale\": 6.0, \"size\": \"64x64\", \"steps\": 2, \"seed\": 11, \"response_format\": \"b64_json\", \"loras\": {\"kohya\": 0.5}}");
        Assert.Equal(200, status);
        Assert.Equal(expected, Convert.FromBase64String((string)body!["data"]![0]!["b64_json"]!));
        // its parameters keep the LoRAs ("use these settings again", GET /v1/jobs/{id})
        var history = JsonNode.Parse(await Http.GetStringAsync("/v1/history?limit=1"))!["data"]![0]!;
        Assert.Equal(0.5, (double)history["parameters"]!["loras"]!["kohya"]!);
    }

    [Fact]
    public async Task TheServerGivesTheLibrarysBytes()
    {
        byte[] expected;
        using (var pipe = StableDiffusionPipeline.FromPretrained(Golden.Path("tiny-sd")))
        using (var r = pipe.Generate("a blue car", "dark", guidanceScale: 6.0, height: 64, width: 64, numInferenceSteps: 2, seed: 11))
            expected = r.Images[0].ToPng();
        var (status, body, _) = await ServerFixture.PostJson(Http, "/v1/images/generations",
            "{\"prompt\": \"a blue car\", \"negative_prompt\": \"dark\", \"guidance_scale\": 6.0, \"size\": \"64x64\", \"steps\": 2, \"seed\": 11, \"response_format\": \"b64_json\"}");
        Assert.Equal(200, status);
        Assert.Equal(expected, Convert.FromBase64String((string)body!["data"]![0]!["b64_json"]!));
    }

    [Fact]
    public async Task ARestartedServerStillServesFinishedJobs()
    {
        using var data = new TempDir();
        string id, url;
        await using (var first = DiffusersServer.Create(ServerFixture.Options(data.Path)))
        {
            await first.StartAsync();
            using var http = new HttpClient { BaseAddress = first.Address };
            var (_, job, _) = await ServerFixture.PostJson(http, "/v1/jobs", "{\"prompt\": \"kept\", \"size\": \"32x32\", \"steps\": 1, \"seed\": 4}");
            id = (string)job!["id"]!;
            url = (string)(await ServerFixture.ReadEvents(http, id))[^1].Data["images"]![0]!;
        }
        await using var second = DiffusersServer.Create(ServerFixture.Options(data.Path));
        await second.StartAsync();
        using var http2 = new HttpClient { BaseAddress = second.Address };
        var stored = JsonNode.Parse(await http2.GetStringAsync($"/v1/jobs/{id}"))!;
        Assert.Equal("done", (string?)stored["status"]);
        Assert.Equal(4, (long)stored["parameters"]!["seed"]!);
        Assert.Equal(url, (string?)stored["images"]![0]);
        Assert.Equal(32, Image.Decode(await http2.GetByteArrayAsync(url)).Width);
        var events = await ServerFixture.ReadEvents(http2, id);
        Assert.Equal("done", Assert.Single(events).Type);
        var history = JsonNode.Parse(await http2.GetStringAsync("/v1/history"))!;
        Assert.Equal(id, (string?)history["data"]![0]!["id"]);
    }

    [Fact]
    public async Task AnApiKeyIsRequiredWhenSetAndBeyondLoopback()
    {
        var e = Assert.Throws<DiffusersException>(() => DiffusersServer.Create(ServerFixture.Options("unused") with { Host = "0.0.0.0" }));
        Assert.Equal("--host 0.0.0.0: is reachable from other machines; refusing to serve it without --api-key (clients then send 'Authorization: Bearer KEY')", e.Message);
        using var data = new TempDir();
        await using var server = DiffusersServer.Create(ServerFixture.Options(data.Path) with { ApiKey = "s3cret" });
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = server.Address };
        var denied = await http.GetAsync("/v1/models");
        Assert.Equal(HttpStatusCode.Unauthorized, denied.StatusCode);
        Assert.Equal("authentication_error", (string?)JsonNode.Parse(await denied.Content.ReadAsStringAsync())!["error"]!["type"]);
        http.DefaultRequestHeaders.Authorization = new("Bearer", "s3cret");
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/v1/models")).StatusCode);
        using var anonymous = new HttpClient { BaseAddress = server.Address };
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/")).StatusCode);   // the page itself is public
        // so are the result files (128 random bits, as OpenAI's image URLs): a client downloads a url response without the key
        var (status, body, _) = await ServerFixture.PostJson(http, "/v1/images/generations", "{\"prompt\": \"a cat\", \"size\": \"32x32\", \"steps\": 1}");
        Assert.Equal(200, status);
        var url = new Uri((string)body!["data"]![0]!["url"]!);
        Assert.Equal(32, Image.Decode(await anonymous.GetByteArrayAsync(url)).Width);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/v1/history")).StatusCode);   // the list of them is not
    }
}
