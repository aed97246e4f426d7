using System.CommandLine;
using DiffusersSharp.Generation;
using DiffusersSharp.Server;

namespace DiffusersSharp.Cli;

/// <summary>
/// <c>diffusers serve --model M [--model M2]… [--host 127.0.0.1] [--port 7860] [--api-key K] [--max-queue N]
/// [--memory-budget GB] [--data-dir DIR] [--preview-vae taesd] [--preview-vae-xl taesdxl] [--lora-dir DIR]
/// [--ip-adapter FILE [--ip-adapter-scale S]]</c>: the OpenAI-compatible image API, jobs with live progress, and the web page
/// at <c>/</c> (<see cref="DiffusersServer"/>). Runs until Ctrl+C. The preview VAEs take <c>org/name@rev</c> as
/// <c>generate</c>'s do (<see cref="WeightSource.Repository"/>); <c>--ip-adapter</c> names a file or a file of a Hub
/// repository as <c>generate --ip-adapter</c> does (<see cref="IPAdapterOptions.Source"/>), loaded into every model.
/// </summary>
public static class ServeCommand
{
    /// <summary>The <c>serve</c> command.</summary>
    public static Command Create(CliContext ctx)
    {
        var models = new Option<string[]>("--model") { Description = "A pipeline folder or Hub id to serve (repeat for more; the first is the default)", Arity = ArgumentArity.OneOrMore, AllowMultipleArgumentsPerToken = false, Required = true };
        var host = new Option<string>("--host") { Description = "Address to listen on; anything but loopback needs --api-key", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "TCP port", DefaultValueFactory = _ => 7860 };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' on the API (or DIFFUSERS_API_KEY)" };
        var maxQueue = new Option<int>("--max-queue") { Description = "Jobs that may wait per model; beyond it: 429 with Retry-After", DefaultValueFactory = _ => 16 };
        var budget = new Option<double?>("--memory-budget") { Description = "GB of model weights kept loaded; least recently used models are unloaded beyond it" };
        var dataDir = new Option<string?>("--data-dir") { Description = "Where results and the history database are kept (default: ~/.local/share/diffusers-sharp/serve)" };
        var loraDir = new Option<string?>("--lora-dir") { Description = "A folder of LoRA .safetensors files requests may name in 'loras' (listed on the page)" };
        var previewVae = new Option<string?>("--preview-vae") { Description = "A tiny VAE (folder or Hub id, e.g. madebyollin/taesd; org/name@rev: that revision) for the live previews of Stable Diffusion 1.x/2.x models; default: a latent → RGB approximation" };
        var previewVaeXl = new Option<string?>("--preview-vae-xl") { Description = "The tiny VAE (folder or Hub id, e.g. madebyollin/taesdxl; org/name@rev: that revision) for the live previews of SDXL models; default: a latent → RGB approximation" };
        var ipAdapter = new Option<string?>("--ip-adapter")
        {
            Description = "An IP-Adapter weight file loaded into every model, as generate's --ip-adapter (a file, whose folder's image_encoder/ is the encoder, "
                          + "or org/name/[subfolder/]file of a Hub repository); every request then gives its image prompt in ip_adapter_image",
        };
        var ipAdapterScale = new Option<double?>("--ip-adapter-scale") { Description = "The IP-Adapter's weight for requests without ip_adapter_scale (diffusers' set_ip_adapter_scale; default 1.0)" };
        var cmd = new Command("serve", "Serve models over an OpenAI-compatible HTTP API with a web page at /")
        {
            models, host, port, apiKey, maxQueue, budget, dataDir, previewVae, previewVaeXl, loraDir, ipAdapter, ipAdapterScale,
        };
        cmd.SetAction(pr =>
        {
            IPAdapterSource? adapter = null;
            double? scale = pr.GetValue(ipAdapterScale);
            if (pr.GetValue(ipAdapter) is { } arg)
            {
                var (pathOrId, subfolder, weightName, revision) = IPAdapterOptions.Source(arg);
                adapter = new IPAdapterSource(pathOrId, subfolder, weightName, revision);
            }
            else if (scale is not null) throw new UserException("--ip-adapter-scale needs --ip-adapter <file|org/name/[subfolder/]file>");
            if (scale is double s && (!double.IsFinite(s) || Math.Abs(s) > 100))
                throw new UserException($"--ip-adapter-scale must be a number between -100 and 100, got {s}");
            var defaults = new ServerOptions();
            // org/name@rev as generate's --preview-vae (an existing path with an '@' stays a path)
            var (vae, vaeRevision) = pr.GetValue(previewVae) is { } v ? WeightSource.Repository(v) : (null, null);
            var (vaeXl, vaeXlRevision) = pr.GetValue(previewVaeXl) is { } x ? WeightSource.Repository(x) : (null, null);
            var options = new ServerOptions
            {
                Models = pr.GetValue(models)!,
                Host = pr.GetValue(host)!,
                Port = pr.GetValue(port),
                ApiKey = pr.GetValue(apiKey) ?? Environment.GetEnvironmentVariable("DIFFUSERS_API_KEY"),
                MaxQueue = pr.GetValue(maxQueue),
                MemoryBudgetGb = pr.GetValue(budget),
                DataDir = pr.GetValue(dataDir) ?? defaults.DataDir,
                PreviewVae = vae,
                PreviewVaeRevision = vaeRevision,
                PreviewVaeXl = vaeXl,
                PreviewVaeXlRevision = vaeXlRevision,
                LoraDir = pr.GetValue(loraDir),
                IPAdapter = adapter,
                IPAdapterScale = scale,
            };
            return Run(ctx, options);
        });
        return cmd;
    }

    /// <summary>Starts the server and waits for Ctrl+C (or the context's cancellation).</summary>
    public static int Run(CliContext ctx, ServerOptions options)
    {
        var server = DiffusersServer.Create(options, message => ctx.Error.WriteLine(message));
        try
        {
            server.StartAsync(ctx.CancellationToken).GetAwaiter().GetResult();
            ctx.Out.WriteLine($"diffusers serve: {server.Address} (Ctrl+C stops)");
            server.WaitForShutdownAsync(ctx.CancellationToken).GetAwaiter().GetResult();
            return CliApp.Ok;
        }
        finally
        {
            server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }
}
