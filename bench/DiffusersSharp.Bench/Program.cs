using DiffusersSharp.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Bench;

/// <summary>
/// Benchmarks (never run as unit tests). Usage:
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- unet2d [--threads 1,2] [--dtypes fp32,bf16] [--runs 5] [--size 256] [--layouts nchw,cl] [--weights loaded|converted]
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- safetensors [--mb 1024]
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- memory [--steps 1000]
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- memory-pipelines [--steps 1000] [--size 32] [--threads 1] [--only sd-euler-a,service,...]
///       (every pipeline path on the tiny golden models, ≥ 1000 UNet steps each in a child process: live tensors, RSS, heaps)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- sd-unet [--threads 2] [--dtypes fp32,bf16] [--runs 3] [--weights loaded|converted]
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- write-bench-model sd15-unet|ddpm-cat-256-unet   (the folder that sd-unet / unet2d load; they run it once themselves)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- sd-unet --lora-rank 64 [--unet-config tests/golden/tiny-sd/unet/config.json] (LoRA load, step none / unfused / fused)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- sd-vae [--threads 2] [--runs 3] [--tiled 1] [--tile 32 (latent cells)]
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- sd-txt2img [--steps 2]
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- sd-unet-memory      (live heap vs RSS per block of one SD UNet step)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- pointwise [--runs 200]   (issue 11's 1×1 convolutions: oneDNN vs addmm)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- sdxl-unet [--threads 2] [--dtypes fp32,bf16] [--runs 1] [--size 128] [--batch 2] [--unet-config path] [--flops-only]
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- sd-load [--runs 3]  (SD 1.5 UNet weight load, and its non-finite check)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- ort [--model ddpm-cat-256|sd15-unet] [--threads 2] [--runs 5]  (ONNX Runtime on the same UNet)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- serve-overhead [--model folder] [--size 256] [--steps 20] [--runs 3] [--load 200] [--sse 20]  (issue 15)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- matmul-peak [--runs 5]   (the machine's speed today: 4096³ fp32 / bf16)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- fresh-memory [--mb 3000] [--chunk 100]   (what first-touched memory costs here, cold and just freed)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- sdpa                (does CPU attention materialise the scores?)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- controlnet [--dtypes fp32,bf16] [--runs 3]   (SD 1.5 ControlNet forward, NCHW vs channels-last)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- kernel-layout [--dtypes fp32,bf16] [--runs 9]   (a convolution on a channels-last input: kernel NCHW vs NHWC)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- attention-paths [--dtypes bf16,fp32] [--runs 5]   (the UNets' attention shapes: libtorch's SDPA vs our fused kernel)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- group-norm-paths [--dtypes bf16,fp32] [--runs 20]   (ResNet norm + SiLU shapes: libtorch's ops vs our fused kernel)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- geglu-paths [--dtypes bf16,fp32] [--runs 20]   (the transformer blocks' GEGLU gate: libtorch's ops vs our fused kernel)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- linear-layout [--dtypes fp32,bf16] [--rows 77] [--runs 9]   (text-encoder linear layers: weight row-major vs column-major)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- e2e [--quick] [--dtypes fp32,bf16] [--threads N] [--only a,b,c,d,e] [--again]
///       (issue 14: txt2img end to end per stage, SD 1.5 / SD-Turbo / LCM / SDXL-Turbo with random weights; each run a child process)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- vae-faults [--latent 64] [--threads 1]   (decode CPU time, page faults, peak by malloc variant)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- mkldnn-prepack [--runs 20]   (conv weights reordered once, via libtorch's C++ ABI)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- text-bf16   (how far bf16 moves the prompt embeddings)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- load-memory [--model sd15-unet|sd15-text|sd15-vae|sdxl-unet] [--dtype fp32|bf16|fp16]
///       (issue 14: peak RSS of one FromPretrained from a random-weight fp32 folder vs the weights it holds; a child process)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- image-diff A.png B.png   (8-bit differences of two images, as e2e's fp32 comparison)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- png-encode [--image path.png] [--runs 9]   (PNG encoding: filters and zlib levels)
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- coldstart [--runs 5] [--cli path1,path2]   (CLI --help and 1-step tiny-sd)
/// Environment: NCHW=1 runs sd-unet, sd-unet-memory and sd-vae in NCHW layout; CL=1 runs sd-unet channels-last (also fp32); TRACE=1 makes sd-vae print memory per decoder block.
///   dotnet run -c Release --project bench/DiffusersSharp.Bench -- train [--sizes 32,64] [--layouts cats,default] [--modes fp32,bf16-pure] [--steps 5] [--batch 64]
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        HugePages.RelaunchIfOff();   // as the diffusers command does (DIFFUSERS_SHARP_NO_HUGEPAGES=1: without)
        NativeSetup.EnsureInitialized();
        string what = args.Length > 0 ? args[0] : "help";
        string Opt(string name, string dflt)
        {
            int i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : dflt;
        }
        int[] threads = Opt("--threads", "1,2").Split(',').Select(int.Parse).ToArray();
        ScalarType[] dtypes = Opt("--dtypes", "fp32,bf16").Split(',').Select(ParseDType).ToArray();
        int runs = int.Parse(Opt("--runs", "5"));
        Console.WriteLine($"native set-up: {NativeSetup.Summary}; torch threads default {torch.get_num_threads()}");
        switch (what)
        {
            case "unet2d":
                UNet2DBench.Run(threads, dtypes, runs, int.Parse(Opt("--size", "256")),
                    Opt("--layouts", "nchw,cl").Split(',').Select(l => l == "cl").ToArray(), BenchModels.Parse(Opt("--weights", "loaded")));
                return 0;
            case "safetensors":
                LoadBench.Run(int.Parse(Opt("--mb", "1024")));
                return 0;
            case "sd-unet" when Array.IndexOf(args, "--lora-rank") >= 0:
                LoraBench.Run(int.Parse(Opt("--lora-rank", "64")), threads, dtypes, runs, Opt("--unet-config", "") is { Length: > 0 } c ? c : null);
                return 0;
            case "sd-unet":
                SdBench.RunUNet(threads, dtypes, runs, BenchModels.Parse(Opt("--weights", "loaded")));
                return 0;
            case "serve-overhead":
                ServeOverheadBench.Run(Opt("--model", "tests/golden/tiny-sd"), int.Parse(Opt("--size", "256")), int.Parse(Opt("--steps", "20")),
                    int.Parse(Opt("--runs", "3")), int.Parse(Opt("--load", "200")), int.Parse(Opt("--sse", "20")));
                return 0;
            case "ort":
                OrtBench.Run(Opt("--model", "ddpm-cat-256"), threads, runs);
                return 0;
            case "sdxl-unet":
                SdxlUNetBench.Run(Opt("--threads", "2").Split(',').Select(int.Parse).ToArray(), dtypes, int.Parse(Opt("--runs", "1")),
                    args.Contains("--unet-config") ? Opt("--unet-config", "") : null, int.Parse(Opt("--size", "128")), int.Parse(Opt("--batch", "2")),
                    args.Contains("--flops-only"));
                return 0;
            case "sd-load":
                SdLoadBench.Run(int.Parse(Opt("--runs", "3")));
                return 0;
            case "sd-unet-memory":
                SdBench.TraceUNetMemory();
                return 0;
            case "sd-vae":
                SdBench.RunVae(threads, runs, Opt("--tiled", "0") == "1", int.Parse(Opt("--tile", "32")), ParseDType(Opt("--dtype", "fp32")));
                return 0;
            case "sd-txt2img":
                SdPipelineBench.Run(int.Parse(Opt("--steps", "2")), Opt("--tokenizer", "tests/golden/clip-tokenizer"));
                return 0;
            case "train":
                TrainBench.Run(Opt("--sizes", "32,64").Split(',').Select(int.Parse).ToArray(), Opt("--layouts", "cats,default").Split(','),
                    Opt("--modes", "fp32,bf16-pure").Split(','), int.Parse(Opt("--steps", "5")), int.Parse(Opt("--batch", "64")));
                return 0;
            case "sdpa":
            {
                // One self-attention call of the SD 1.5 UNet's first level (batch 2, 8 heads, 4096 tokens, 40 dims):
                // the memory it takes shows whether libtorch materialises the 4096² scores (1.07 GB) or streams them.
                using var q = torch.randn(2, 8, 4096, 40);
                using var k = torch.randn(2, 8, 4096, 40);
                using var v = torch.randn(2, 8, 4096, 40);
                using var noGrad = torch.no_grad();
                long before = Harness.PeakRssBytes();
                var r = Harness.Time("sdpa 2x8x4096x40 fp32", 1, 3, () => { using var o = nn.functional.scaled_dot_product_attention(q, k, v); });
                Console.WriteLine($"  peak RSS +{(Harness.PeakRssBytes() - before) / 1e6:F0} MB");
                // The layout the UNet's Attention passes: (B, S, H, D) viewed as (B, H, S, D).
                using var qt = torch.randn(2, 4096, 8, 40).transpose(1, 2);
                using var kt = torch.randn(2, 4096, 8, 40).transpose(1, 2);
                using var vt = torch.randn(2, 4096, 8, 40).transpose(1, 2);
                before = Harness.PeakRssBytes();
                Harness.Time("sdpa transposed views", 1, 3, () => { using var o = nn.functional.scaled_dot_product_attention(qt, kt, vt); });
                Console.WriteLine($"  peak RSS +{(Harness.PeakRssBytes() - before) / 1e6:F0} MB");
                return 0;
            }
            case "linear-layout":
                return LinearLayoutBench.Run(dtypes, long.Parse(Opt("--rows", "77")), int.Parse(Opt("--runs", "9")));
            case "linear-paths":
                foreach (var dt in dtypes) LinearPathsBench.Run(dt, int.Parse(Opt("--runs", "10")));
                return 0;
            case "controlnet":
                return ControlNetBench.Run(dtypes, int.Parse(Opt("--runs", "3")));
            case "kernel-layout":
                return KernelLayoutBench.Run(dtypes, int.Parse(Opt("--runs", "9")));
            case "attention-paths":
                return AttentionPathsBench.Run(dtypes, int.Parse(Opt("--runs", "5")));
            case "group-norm-paths":
                return GroupNormPathsBench.Run(dtypes, int.Parse(Opt("--runs", "20")));
            case "winograd-rounding":
                WinogradRoundingBench.Run(int.Parse(Opt("--channels", "640")));
                return 0;
            case "winograd-paths":
                return WinogradPathsBench.Run(dtypes, int.Parse(Opt("--runs", "5")), Opt("--layouts", "nchw,cl").Split(','),
                    long.Parse(Opt("--band-mb", "16")), Array.IndexOf(args, "--only") >= 0 ? Opt("--only", "") : null);
            case "geglu-paths":
                return GegluPathsBench.Run(dtypes, int.Parse(Opt("--runs", "20")));
            case "tiny-vae":
                TinyVaeBench.Run(dtypes, int.Parse(Opt("--runs", "5")), int.Parse(Opt("--latent", "64")));
                return 0;
            case "pointwise":
                PointwiseBench.Run(threads, dtypes, int.Parse(Opt("--runs", "200")));
                return 0;
            case "e2e":
                return E2eBench.Run(args.Contains("--quick"), Opt("--dtypes", "fp32,bf16").Split(','),
                    Opt("--threads", "") is { Length: > 0 } et ? int.Parse(et) : null,
                    Opt("--only", "") is { Length: > 0 } only ? only.Split(',') : null, args.Contains("--again"));
            case "e2e-configs":
                return E2eFolders.CheckConfigs();
            case "e2e-write":
                return E2eFolders.Write(Opt("--folder", ""), Opt("--scenario", ""), args.Contains("--quick"));
            case "e2e-run":
                return E2eBench.RunOne(Opt("--folder", ""), Opt("--scenario", ""), Opt("--dtype", "fp32"), args.Contains("--quick"),
                    Opt("--threads", "") is { Length: > 0 } rt ? int.Parse(rt) : null, args.Contains("--again"));
            case "vae-faults":
                return VaeFaultsBench.Run(int.Parse(Opt("--latent", "64")), int.Parse(Opt("--threads", "1")),
                    Opt("--variants", "") is { Length: > 0 } vs ? vs.Split(',').Select(int.Parse).ToArray() : null);
            case "vae-faults-run":
                return VaeFaultsBench.RunOne(int.Parse(Opt("--latent", "64")), int.Parse(Opt("--threads", "1")));
            case "mkldnn-prepack":
                return MkldnnPrepackBench.Run(int.Parse(Opt("--runs", "20")));
            case "text-bf16":
                return TextEncoderDtypeBench.Run();
            case "image-diff":
                Console.WriteLine(E2eImageDiff.Describe(Path.GetFileName(args[1]), "vs " + Path.GetFileName(args[2]), args[1], args[2]));
                return 0;
            case "png-encode":
                return PngEncodeBench.Run(Opt("--image", Path.Combine(Path.GetTempPath(), "diffusers-bench-e2e-b-bf16.png")), int.Parse(Opt("--runs", "9")));
            case "coldstart":
                return ColdStartBench.Run(Opt("--cli", "") is { Length: > 0 } cli ? cli.Split(',') : [], int.Parse(Opt("--runs", "5")));
            case "load-memory":
                return LoadMemoryBench.Run(Opt("--model", "sd15-unet"), Opt("--dtype", "bf16"));
            case "load-memory-run":
                return LoadMemoryBench.RunOne(Opt("--folder", ""), Opt("--model", "sd15-unet"), Opt("--dtype", "bf16"));
            case "write-bench-model":
                return BenchModels.Write(args.Length > 1 ? args[1] : "");
            case "matmul-peak":
                return MatmulPeakBench.Run(int.Parse(Opt("--runs", "5")));
            case "symbol-scan":
                return SymbolScanBench.Run(int.Parse(Opt("--runs", "5")));
            case "symbol-scan-run":
                return SymbolScanBench.RunOne(args[1]);
            case "fresh-memory":
                return FreshMemoryBench.Run(long.Parse(Opt("--mb", "3000")), long.Parse(Opt("--chunk", "100")));
            case "memory":
                MemoryBench.Run(int.Parse(Opt("--steps", "1000")));
                return 0;
            case "memory-pipelines":
                return MemoryPipelinesBench.Run(int.Parse(Opt("--steps", "1000")), int.Parse(Opt("--size", "32")), int.Parse(Opt("--threads", "1")), Opt("--only", "") is { Length: > 0 } mp ? mp.Split(',') : null);
            case "memory-pipelines-run":
                return MemoryPipelinesBench.RunOne(Opt("--path", ""), int.Parse(Opt("--steps", "1000")), int.Parse(Opt("--size", "32")),
                    int.Parse(Opt("--threads", "1")));
            default:
                Console.WriteLine("usage: bench <unet2d|safetensors|memory|memory-pipelines|sd-unet|sd-unet-memory|sd-vae|sd-txt2img|sd-load|sdpa|pointwise|train|e2e|load-memory|coldstart|text-bf16|vae-faults|mkldnn-prepack|matmul-peak> [options]; see Program.cs");
                return what == "help" ? 0 : 1;
        }
    }

    private static ScalarType ParseDType(string s) => s switch
    {
        "fp32" => ScalarType.Float32,
        "bf16" => ScalarType.BFloat16,
        "fp16" => ScalarType.Float16,
        _ => throw new ArgumentException($"unknown dtype '{s}' (fp32, bf16, fp16)"),
    };
}
