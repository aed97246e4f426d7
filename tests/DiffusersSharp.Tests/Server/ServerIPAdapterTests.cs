using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using DiffusersSharp.Cli;
using DiffusersSharp.Generation;
using DiffusersSharp.Imaging;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Server;
using DiffusersSharp.Tests.Cli;
using DiffusersSharp.Tests.Generation;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Server;

/// <summary>A server on 127.0.0.1 serving tiny-sd with the basic IP-Adapter at scale 0.6 (<c>serve --ip-adapter … --ip-adapter-scale 0.6</c>).</summary>
public sealed class IPAdapterServerFixture : IAsyncLifetime
{
    private readonly TempDir _data = new();

    public DiffusersServer Server { get; private set; } = null!;

    public HttpClient Http { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Server = DiffusersServer.Create(ServerFixture.Options(_data.Path) with
        {
            IPAdapter = GenerationIPAdapterTests.Basic,
            IPAdapterScale = 0.6,
            LoraDir = null,
        });
        await Server.StartAsync();
        Http = new HttpClient { BaseAddress = Server.Address, Timeout = TimeSpan.FromSeconds(120) };
    }

    public async Task DisposeAsync()
    {
        Http.Dispose();
        await Server.DisposeAsync();
        _data.Dispose();
    }
}

/// <summary>
/// <c>ip_adapter_image</c> (base64 or a data: URL in JSON, a file in an edit) and <c>ip_adapter_scale</c> on a server with
/// an IP-Adapter: the bytes of a direct pipeline call with the same settings, the server's scale back after a request's own;
/// refusals are 400s naming the field.
/// </summary>
public class ServerIPAdapterTests(IPAdapterServerFixture fixture) : IClassFixture<IPAdapterServerFixture>
{
    private static readonly string IPImageBase64 = Convert.ToBase64String(File.ReadAllBytes(Golden.Path("ip-adapter", "ip-image.png")));
    private const string Body = "\"prompt\": \"a red house\", \"size\": \"64x64\", \"steps\": 3, \"seed\": 5, \"response_format\": \"b64_json\"";

    [Fact]
    public async Task AnImagePromptGivesThePipelinesBytesAtTheServersScaleOrTheRequests()
    {
        var expected = GenerationIPAdapterTests.PipelineBytes(1.0, 0.6);
        async Task<byte[]> Generate(string extra)
        {
            var (status, body, _) = await ServerFixture.PostJson(fixture.Http, "/v1/images/generations", "{" + Body + extra + "}");
            Assert.True(status == 200, body?.ToJsonString());
            return Convert.FromBase64String((string)body!["data"]![0]!["b64_json"]!);
        }
        Assert.Equal(expected[1], await Generate($", \"ip_adapter_image\": \"{IPImageBase64}\""));   // serve --ip-adapter-scale 0.6
        Assert.Equal(expected[0], await Generate($", \"ip_adapter_image\": \"data:image/png;base64,{IPImageBase64}\", \"ip_adapter_scale\": 1"));
        var parameters = JsonNode.Parse(await fixture.Http.GetStringAsync("/v1/history?limit=1"))!["data"]![0]!["parameters"]!;
        Assert.Equal(1.0, (double)parameters["ip_adapter_scale"]!);
        Assert.Equal(expected[1], await Generate($", \"ip_adapter_image\": \"{IPImageBase64}\""));
    }

    [Fact]
    public async Task AnEditTakesTheImagePromptAsAFile()
    {
        byte[] init = File.ReadAllBytes(Golden.Path("img2img-init.png"));
        byte[] expected;
        using (var pipe = StableDiffusionImg2ImgPipeline.FromPretrained(GenerationServiceTests.Model))
        {
            pipe.LoadIPAdapter(Golden.Path("ip-adapter"), null, "ip-adapter-basic.safetensors");
            pipe.SetIPAdapterScale(0.6);
            using var r = pipe.Generate("a cat", Image.LoadImage(init), numInferenceSteps: 2, seed: 3, ipAdapterImage: GenerationIPAdapterTests.IPImage);
            expected = r.Images[0].ToPng();
        }
        using var form = new MultipartFormDataContent
        {
            { new StringContent("a cat"), "prompt" }, { new StringContent("b64_json"), "response_format" },
            { new StringContent("2"), "steps" }, { new StringContent("3"), "seed" },
        };
        var image = new ByteArrayContent(init);
        image.Headers.ContentType = MediaTypeHeaderValue.Parse("image/png");
        form.Add(image, "image", "image.png");
        form.Add(new ByteArrayContent(Convert.FromBase64String(IPImageBase64)), "ip_adapter_image", "face.png");
        var response = await fixture.Http.PostAsync("/v1/images/edits", form);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.True(response.IsSuccessStatusCode, body.ToJsonString());
        Assert.Equal(expected, Convert.FromBase64String((string)body["data"]![0]!["b64_json"]!));
    }

    [Theory]
    [InlineData("", "ip_adapter_image", "ip_adapter_image: is required: this model has an IP-Adapter loaded, and diffusers 0.25.1 runs a pipeline with an IP-Adapter only with an image prompt (its UNet requires image_embeds), as generate --ip-adapter needs --ip-adapter-image")]
    [InlineData(", \"ip_adapter_image\": \"not base64!\"", "ip_adapter_image", "ip_adapter_image: must be a base64-encoded image (PNG or JPEG; a data: URL is taken too)")]
    [InlineData(", \"ip_adapter_image\": \"aGVsbG8=\"", "ip_adapter_image", "ip_adapter_image: not a readable image (")]
    [InlineData(", \"ip_adapter_image\": 5", "ip_adapter_image", "ip_adapter_image: must be a string")]
    [InlineData(", \"ip_adapter_image\": \"IMAGE\", \"ip_adapter_scale\": 150", "ip_adapter_scale", "ip_adapter_scale: must be a number between -100 and 100, got 150")]
    [InlineData(", \"ip_adapter_image\": \"IMAGE\", \"ip_adapter_scale\": 1e999", "ip_adapter_scale", "ip_adapter_scale: must be a number between -100 and 100, got Infinity")]
    public async Task ABadImagePromptIsA400NamingTheField(string extra, string param, string message)
    {
        var (status, body, _) = await ServerFixture.PostJson(fixture.Http, "/v1/jobs", "{" + Body + extra.Replace("IMAGE", IPImageBase64) + "}");
        Assert.Equal(400, status);
        Assert.StartsWith(message, (string?)body!["error"]!["message"]);
        Assert.Equal(param, (string?)body["error"]!["param"]);
    }
}

/// <summary>
/// <c>timesteps</c> on the shared server (no IP-Adapter): the pipeline's bytes for DDPM's custom timesteps, echoed with the
/// steps they set; a contradicting <c>steps</c>, malformed lists and an image prompt are 400s naming the field, and a
/// scheduler without custom timesteps is refused in diffusers' words.
/// </summary>
[Collection("server")]
public class ServerTimestepsTests(ServerFixture fixture)
{
    private const string Body = "\"prompt\": \"a red house\", \"size\": \"64x64\", \"seed\": 5, \"response_format\": \"b64_json\"";

    [Fact]
    public async Task CustomTimestepsGiveThePipelinesBytesAndAreEchoedWithTheirSteps()
    {
        byte[] expected;
        using (var pipe = StableDiffusionPipeline.FromPretrained(GenerationServiceTests.Model))
        {
            using var own = pipe.Scheduler;
            pipe.Scheduler = SchedulerFactory.FromConfig(DDPMScheduler.Name, own.Config);
            using var r = pipe.Generate("a red house", height: 64, width: 64, seed: 5, timesteps: [900, 700, 450, 200, 50]);
            expected = r.Images[0].ToPng();
        }
        // steps may be given when it is their count (what the parameters echo)
        var (status, body, _) = await ServerFixture.PostJson(fixture.Http, "/v1/images/generations",
            "{" + Body + ", \"scheduler\": \"ddpm\", \"timesteps\": [900, 700, 450, 200, 50], \"steps\": 5}");
        Assert.True(status == 200, body?.ToJsonString());
        Assert.Equal(expected, Convert.FromBase64String((string)body!["data"]![0]!["b64_json"]!));
        var parameters = JsonNode.Parse(await fixture.Http.GetStringAsync("/v1/history?limit=1"))!["data"]![0]!["parameters"]!;
        Assert.Equal([900L, 700, 450, 200, 50], parameters["timesteps"]!.AsArray().Select(n => (long)n!));
        Assert.Equal(5, (int)parameters["steps"]!);
    }

    [Theory]
    [InlineData(", \"timesteps\": [999, 500], \"steps\": 25", "timesteps", "timesteps: 2 custom timesteps set 2 steps, and steps is 25; leave steps out (diffusers' timesteps replace num_inference_steps)")]
    [InlineData(", \"timesteps\": [999, 500.5]", "timesteps", "timesteps: must be a list of integer timesteps in descending order (e.g. [999, 759, 499, 259])")]
    [InlineData(", \"timesteps\": \"999,500\"", "timesteps", "timesteps: must be a list of integer timesteps in descending order (e.g. [999, 759, 499, 259])")]
    [InlineData(", \"timesteps\": []", "timesteps", "timesteps: give between 1 and 1000 timesteps (or none, to use steps), got 0")]
    [InlineData(", \"ip_adapter_image\": \"aGVsbG8=\"", "ip_adapter_image", "ip_adapter_image: not a readable image (")]
    public async Task ABadTimestepsOrImagePromptIsA400NamingTheField(string extra, string param, string message)
    {
        var (status, body, _) = await ServerFixture.PostJson(fixture.Http, "/v1/images/generations", "{" + Body + extra + "}");
        Assert.Equal(400, status);
        Assert.StartsWith(message, (string?)body!["error"]!["message"]);
        Assert.Equal(param, (string?)body["error"]!["param"]);
    }

    [Fact]
    public async Task AnImagePromptWithoutAnAdapterAndTimestepsOfASchedulerWithoutThemAre400s()
    {
        string png = Convert.ToBase64String(File.ReadAllBytes(Golden.Path("ip-adapter", "ip-image.png")));
        var (status, body, _) = await ServerFixture.PostJson(fixture.Http, "/v1/images/generations", "{" + Body + $", \"ip_adapter_image\": \"{png}\"}}");
        Assert.Equal(400, status);
        Assert.Equal("ip_adapter_image: no IP-Adapter is loaded for this model (serve --ip-adapter FILE; GenerationService.LoadIPAdapter), so it cannot take an image prompt",
            (string?)body!["error"]!["message"]);
        // tiny-sd's PNDMScheduler: refused when the job runs, in diffusers' words
        (status, body, _) = await ServerFixture.PostJson(fixture.Http, "/v1/images/generations", "{" + Body + ", \"timesteps\": [999, 500]}");
        Assert.Equal(400, status);
        Assert.Equal("generation failed: StableDiffusionPipeline: The current scheduler class PNDMScheduler's `set_timesteps` does not support custom timestep schedules. Please check whether you are using the correct scheduler.",
            (string?)body!["error"]!["message"]);
    }

    [Theory]
    [InlineData("999,500", "timesteps: 2 custom timesteps set 2 steps, and steps is 3; leave steps out (diffusers' timesteps replace num_inference_steps)")]
    [InlineData("[999, 500]", "timesteps: 2 custom timesteps set 2 steps, and steps is 3; leave steps out (diffusers' timesteps replace num_inference_steps)")]
    [InlineData("999,late", "timesteps: must be a list of integer timesteps in descending order (e.g. [999, 759, 499, 259])")]
    public async Task AnEditsTimestepsFieldIsReadAsTheCliReadsIt(string value, string message)
    {
        using var form = new MultipartFormDataContent
        {
            { new StringContent("a cat"), "prompt" }, { new StringContent("3"), "steps" }, { new StringContent(value), "timesteps" },
        };
        form.Add(new ByteArrayContent(File.ReadAllBytes(Golden.Path("img2img-init.png"))), "image", "image.png");
        var response = await fixture.Http.PostAsync("/v1/images/edits", form);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Equal(message, (string?)body["error"]!["message"]);
        Assert.Equal("timesteps", (string?)body["error"]!["param"]);
    }

    [Fact]
    public void ServeRefusesAScaleWithoutAnAdapterAndAnAdapterFolder()
    {
        var (code, _, stderr) = CliRun.Run("serve", "--model", Golden.Path("tiny-sd"), "--ip-adapter-scale", "0.5", "--data-dir", "unused");
        Assert.Equal(CliApp.UserError, code);
        Assert.Equal("error: --ip-adapter-scale needs --ip-adapter <file|org/name/[subfolder/]file>", stderr.Trim());
        string folder = Golden.Path("ip-adapter");
        (code, _, stderr) = CliRun.Run("serve", "--model", Golden.Path("tiny-sd"), "--ip-adapter", folder, "--data-dir", "unused");
        Assert.Equal(CliApp.UserError, code);
        Assert.Equal($"error: --ip-adapter {folder}: a folder; name the weight file in it ({Path.Combine(folder, "ip-adapter_sd15.bin")}): diffusers' load_ip_adapter has no default weight_name", stderr.Trim());
    }
}
