using System.Text.Json.Nodes;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Server;
using DiffusersSharp.Tests.Support;

namespace DiffusersSharp.Tests.Server;

/// <summary>Two models and a memory budget that holds one: using the other unloads the least recently used.</summary>
public class ModelPoolTests
{
    [Fact]
    public async Task BeyondTheBudgetTheLeastRecentlyUsedModelIsUnloaded()
    {
        using var data = new TempDir();
        using var models = new TempDir();
        foreach (var name in new[] { "first", "second" }) CopyDir(Golden.Path("tiny-sd"), Path.Combine(models.Path, name));
        // each copy of tiny-sd holds 8.1 MB of parameters: a 10 MB budget holds one, not both
        await using var server = DiffusersServer.Create(ServerFixture.Options(data.Path) with
        {
            Models = [Path.Combine(models.Path, "first"), Path.Combine(models.Path, "second")],
            MemoryBudgetGb = 0.010,
        });
        await server.StartAsync();
        using var http = new HttpClient { BaseAddress = server.Address };
        async Task<string> Loaded() => string.Join(",", JsonNode.Parse(await http.GetStringAsync("/v1/models"))!["data"]!.AsArray()
            .Where(m => (bool)m!["loaded"]!).Select(m => (string)m!["id"]!));
        async Task Generate(string model)
        {
            var (status, body, _) = await ServerFixture.PostJson(http, "/v1/images/generations",
                $"{{\"prompt\": \"a\", \"size\": \"32x32\", \"steps\": 1, \"model\": \"{model}\"}}");
            Assert.True(status == 200, body?.ToJsonString());
        }

        Assert.Equal("", await Loaded());
        await Generate("first");
        Assert.Equal("first", await Loaded());
        await Generate("second");
        Assert.Equal("second", await Loaded());
        await Generate("first");
        Assert.Equal("first", await Loaded());
        Assert.True(server.Pool.LoadedBytes <= 10_000_000, $"{server.Pool.LoadedBytes} bytes loaded");
    }

    [Fact]
    public async Task EachModelPreviewsWithTheTinyVaeOfItsLatentSpace()
    {
        // one --preview-vae was set on every model: an SDXL model's previews were decoded by the SD TAESD (wrong colours)
        using var data = new TempDir();
        using var vaes = new TempDir();
        string xlVae = Path.Combine(vaes.Path, "taesdxl");
        CopyDir(Golden.Path("tiny-taesd"), xlVae);
        // the same weights with another scaling_factor: tells which folder a model's preview VAE was loaded from
        string config = Path.Combine(xlVae, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"scaling_factor\": 1.0", "\"scaling_factor\": 2.0"));
        var options = ServerFixture.Options(data.Path) with
        {
            Models = [Golden.Path("tiny-sd"), Golden.Path("tiny-sdxl")],
            PreviewVae = Golden.Path("tiny-taesd"),
        };
        var log = new List<string>();
        var serverLog = new List<string>();
        await using (var server = DiffusersServer.Create(options, serverLog.Add))
        {
            server.Pool.Preload(log.Add);
            Assert.Empty(log);
            var (sd, xl) = (server.Pool.Workers[0].Service!, server.Pool.Workers[1].Service!);
            Assert.Equal((LatentSpace.StableDiffusion, LatentSpace.StableDiffusionXL), (sd.LatentSpace, xl.LatentSpace));
            Assert.Equal(1.0, sd.Taesd!.Vae.ScalingFactor);
            Assert.Null(xl.Taesd);   // the SD TAESD is not the SDXL model's: it previews with the latent → RGB map
            // and says so: a --preview-vae that served an SDXL model before --preview-vae-xl existed is not used silently
            Assert.Equal(
                [$"warning: tiny-sdxl is an SDXL model: its previews are a latent → RGB approximation, since --preview-vae {Golden.Path("tiny-taesd")} is the SD 1.x/2.x models' tiny VAE; give --preview-vae-xl madebyollin/taesdxl for them"],
                serverLog);
        }
        serverLog.Clear();
        await using (var server = DiffusersServer.Create(options with { PreviewVaeXl = xlVae }, serverLog.Add))
        {
            server.Pool.Preload(log.Add);
            Assert.Empty(log);
            Assert.Empty(serverLog);
            var (sd, xl) = (server.Pool.Workers[0].Service!, server.Pool.Workers[1].Service!);
            Assert.Equal(1.0, sd.Taesd!.Vae.ScalingFactor);
            Assert.Equal(2.0, xl.Taesd!.Vae.ScalingFactor);
        }
    }

    private static void CopyDir(string from, string to)
    {
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            string target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }
}
