using System.Diagnostics;
using DiffusersSharp.Cli;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Runtime;
using DiffusersSharp.Tests.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Support;

/// <summary>
/// The child-process side of Runtime/NativeFaultTests: <c>dotnet DiffusersSharp.Tests.dll native-run [options] SPEC...</c>
/// runs each SPEC once, printing <c>run SPEC</c> before and <c>ok SPEC 1.23s (cpu 2.34s)</c> after it, so that a process killed by
/// a signal names the run that killed it; then <c>nnpack-enabled True|False</c> and <c>done</c>.
/// SPEC is MODEL/DTYPE/LAYOUT/THREADS/SIZE/BATCH (DTYPE fp32|bf16, LAYOUT cl|nchw, SIZE the sample's side: pixels,
/// or latent cells for sd15-unet). MODEL: ddpm-cats-32 (the bundled model), ddpm-cat-256 and sd15-unet (random weights,
/// the public configs), sd15-vae (encode then decode; SIZE in pixels), sd15-vae-decode (decode only; SIZE in latent
/// cells), or one 1×1 convolution IN→OUT: conv-IN-OUT through
/// <c>torch.nn.functional.conv2d</c>, pointwise-IN-OUT through <see cref="Layers.Pointwise"/>.
/// Options, applied in this order before the runs: <c>--show-onednn-caches</c> (the cache sizes oneDNN reads on this
/// CPU: below one row of a 1×1 convolution's reduction, 2-4 KB, the convolutions of issue 11 fault),
/// <c>--shrink-onednn-caches</c>, <c>--fail-nnpack-init</c> (<see cref="LibTorchInternals"/>), <c>--nnpack-on</c>
/// (undo the library's NNPACK switch).
/// </summary>
internal static class NativeRun
{
    public const string Verb = "native-run";

    public static int Run(string[] args)
    {
        NativeSetup.EnsureInitialized();
        var options = args.Where(a => a.StartsWith("--", StringComparison.Ordinal)).ToHashSet();
        if (options.Except(["--show-onednn-caches", "--shrink-onednn-caches", "--fail-nnpack-init", "--nnpack-on"]).FirstOrDefault() is { } unknown)
            throw new ArgumentException($"unknown option {unknown}");
        torch.manual_seed(0);
        if (options.Contains("--show-onednn-caches") || options.Contains("--shrink-onednn-caches"))
        {
            // oneDNN builds its CPU description on its first convolution (fp32, 3×3, large enough for oneDNN)
            using (torch.inference_mode()) { using var warm = nn.functional.conv2d(torch.ones(1, 32, 32, 32), torch.ones(32, 32, 3, 3)); }
            Say(options.Contains("--shrink-onednn-caches") ? LibTorchInternals.ShrinkOneDnnCaches() : LibTorchInternals.DescribeOneDnnCaches());
        }
        if (options.Contains("--fail-nnpack-init")) Say(LibTorchInternals.FailNnpackInit());
        if (options.Contains("--nnpack-on")) LibTorchInternals.SetNnpackEnabled(true);

        using var models = new ModelCache();
        foreach (var spec in args.Where(a => !a.StartsWith("--", StringComparison.Ordinal)))
        {
            Say("run " + spec);
            var sw = Stopwatch.StartNew();
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            RunOne(spec, models);
            Say($"ok {spec} {sw.Elapsed.TotalSeconds:F2}s (cpu {(Process.GetCurrentProcess().TotalProcessorTime - cpu).TotalSeconds:F2}s)");
        }
        Say($"nnpack-enabled {NativeSetup.LibTorchNnpackEnabled()}");
        Say("done");
        return 0;
    }

    private static void Say(string line)
    {
        Console.Out.WriteLine(line);
        Console.Out.Flush();
    }

    private static void RunOne(string spec, ModelCache models)
    {
        var p = spec.Split('/');
        if (p.Length != 6) throw new ArgumentException($"bad spec '{spec}' (MODEL/DTYPE/LAYOUT/THREADS/SIZE/BATCH)");
        var dtype = p[1] switch { "fp32" => ScalarType.Float32, "bf16" => ScalarType.BFloat16, _ => throw new ArgumentException(spec) };
        bool cl = p[2] switch { "cl" => true, "nchw" => false, _ => throw new ArgumentException(spec) };
        int threads = int.Parse(p[3]), size = int.Parse(p[4]), batch = int.Parse(p[5]);
        torch.set_num_threads(threads);
        using var scope = torch.NewDisposeScope();
        using var mode = torch.inference_mode();
        var g = new Generator(1);
        Tensor Randn(params long[] shape) => torch.randn(shape, generator: g).to(dtype);
        Tensor Layout(Tensor x) => cl ? Layers.ToChannelsLast(x) : x;

        if (p[0].StartsWith("conv-", StringComparison.Ordinal) || p[0].StartsWith("pointwise-", StringComparison.Ordinal))
        {
            var io = p[0].Split('-');
            long cin = long.Parse(io[1]), cout = long.Parse(io[2]);
            using var conv = nn.Conv2d(cin, cout, 1);
            conv.to(dtype);
            var x = Layout(Randn(batch, cin, size, size));
            _ = io[0] == "conv" ? nn.functional.conv2d(x, conv.weight, conv.bias) : Layers.Pointwise(conv, x);
            return;
        }
        switch (models.Get(p[0], dtype))
        {
            case UNet2DModel unet:
                unet.ChannelsLast = cl;
                unet.Forward(Randn(batch, unet.Config.InChannels, size, size), 500);
                break;
            case UNet2DConditionModel unet:
                unet.ChannelsLast = cl;
                unet.Forward(Randn(batch, 4, size, size), 981, Randn(batch, 77, 768));
                break;
            case AutoencoderKL vae when p[0] == "sd15-vae-decode":
                vae.ChannelsLast = cl;
                vae.Decode(Randn(batch, 4, size, size));
                break;
            case AutoencoderKL vae:
                vae.ChannelsLast = cl;
                using (var posterior = vae.Encode(Randn(batch, 3, size, size)).LatentDist)
                    vae.Decode(posterior.Mode());
                break;
        }
    }

    /// <summary>Builds each model once (in fp32, then converted for the first bf16 run), keeps the last one.</summary>
    private sealed class ModelCache : IDisposable
    {
        private string? _name;
        private nn.Module? _model;
        private ScalarType _dtype;

        public nn.Module Get(string name, ScalarType dtype)
        {
            if (name == "sd15-vae-decode") name = "sd15-vae"; // the same model, decode only
            if (_name != name || (_dtype != dtype && _dtype != ScalarType.Float32))
            {
                Dispose();
                var sw = Stopwatch.StartNew();
                torch.manual_seed(0);
                _model = Build(name);
                _model.eval();
                _name = name;
                _dtype = ScalarType.Float32;
                Say($"built {name} {sw.Elapsed.TotalSeconds:F2}s");
            }
            if (_dtype != dtype)
            {
                _model!.to(dtype);
                _dtype = dtype;
            }
            return _model!;
        }

        private static nn.Module Build(string name) => name switch
        {
            "ddpm-cats-32" => UNet2DModel.FromPretrained(DefaultModel.Path, subfolder: "unet"),
            "ddpm-cat-256" => UNet2DModel.FromConfig(ConfigJson.Parse<UNet2DModelConfig>(UNet2DModelConfigTests.DdpmCat256Json, name)),
            "sd15-unet" => UNet2DConditionModel.FromConfig(
                ConfigJson.Parse<UNet2DConditionModelConfig>(UNet2DConditionModelArchitectureTests.Sd15Config, name)),
            "sd15-vae" or "sd15-vae-decode" => AutoencoderKL.FromConfig(new AutoencoderKLConfig
            {
                // runwayml/stable-diffusion-v1-5 vae/config.json
                BlockOutChannels = [128, 256, 512, 512], LayersPerBlock = 2, SampleSize = [512],
                DownBlockTypes = [.. Enumerable.Repeat("DownEncoderBlock2D", 4)],
                UpBlockTypes = [.. Enumerable.Repeat("UpDecoderBlock2D", 4)],
            }),
            _ => throw new ArgumentException($"unknown model '{name}'"),
        };

        public void Dispose()
        {
            _model?.Dispose();
            _model = null;
            _name = null;
        }
    }
}
