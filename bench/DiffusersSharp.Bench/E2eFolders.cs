using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using TorchSharp;

namespace DiffusersSharp.Bench;

/// <summary>
/// Writes the end-to-end benchmark's pipeline folders: random weights (fixed seeds) of a scenario's configs saved as a
/// diffusers folder (model_index.json, text_encoder, tokenizer, unet, vae, scheduler, and taesd/), in a child process so the
/// building does not count in any run's peak RSS. A folder is written once and reused (a <c>.complete</c> marker).
/// </summary>
public static class E2eFolders
{
    private const string ModelIndex = """
    { "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.25.1",
      "scheduler": ["diffusers", "SCHEDULER"], "text_encoder": ["transformers", "CLIPTextModel"],
      "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
      "vae": ["diffusers", "AutoencoderKL"] }
    """;

    private const string SdxlModelIndex = """
    { "_class_name": "StableDiffusionXLPipeline", "_diffusers_version": "0.25.1", "force_zeros_for_empty_prompt": true,
      "scheduler": ["diffusers", "SCHEDULER"], "text_encoder": ["transformers", "CLIPTextModel"],
      "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"], "tokenizer": ["transformers", "CLIPTokenizer"],
      "tokenizer_2": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
      "vae": ["diffusers", "AutoencoderKL"] }
    """;

    /// <summary>The folder of <paramref name="s"/>, written first (in a child process) when it is not there yet.</summary>
    public static string Ensure(E2eConfigs.Scenario s, bool quick, string repoRoot)
    {
        string folder = Path.Combine(Path.GetTempPath(), "diffusers-bench-e2e", $"{s.Family}{(quick ? "-quick" : "")}");
        if (File.Exists(Path.Combine(folder, ".complete"))) return folder;
        Console.WriteLine($"writing random-weight pipeline folder {folder} ...");
        var args = new List<string> { "e2e-write", "--folder", folder, "--scenario", s.Name };
        if (quick) args.Add("--quick");
        var (code, _) = ChildProcesses.RunSelf(args, echo: true);
        if (code != 0) throw new InvalidOperationException($"writing {folder} failed (exit {code})");
        return folder;
    }

    /// <summary>Parses every scenario's full-size configs (the text config validated too) without building a model (a fast check of the JSON).</summary>
    public static int CheckConfigs()
    {
        string root = E2eConfigs.RepoRoot();
        foreach (var s in E2eConfigs.Scenarios)
        {
            var (textJson, unetJson, vaeJson, taesdJson) = E2eConfigs.Components(s, quick: false, root);
            ConfigJson.Parse<CLIPTextConfig>(textJson, $"{s.Name} text_encoder").Validate($"{s.Name} text_encoder");
            if (s.Family == "sdxl")
                ConfigJson.Parse<CLIPTextConfig>(E2eConfigs.Text2(quick: false, root), $"{s.Name} text_encoder_2").Validate($"{s.Name} text_encoder_2");
            ConfigJson.Parse<UNet2DConditionModelConfig>(unetJson, $"{s.Name} unet");
            ConfigJson.Parse<AutoencoderKLConfig>(vaeJson, $"{s.Name} vae");
            ConfigJson.Parse<AutoencoderTinyConfig>(taesdJson, $"{s.Name} taesd");
            Schedulers.SchedulerFactory.FromJson(s.SchedulerJson, $"{s.Name} scheduler").Dispose();
            Console.WriteLine($"{s.Name}: configs parse");
        }
        return 0;
    }

    /// <summary>Writes the folder (in the child process).</summary>
    public static int Write(string folder, string scenarioName, bool quick)
    {
        var s = E2eConfigs.Scenarios.Single(x => x.Name == scenarioName);
        string root = E2eConfigs.RepoRoot();
        var (textJson, unetJson, vaeJson, taesdJson) = E2eConfigs.Components(s, quick, root);
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
        Directory.CreateDirectory(folder);
        using (var noGrad = torch.no_grad())
        {
            torch.manual_seed(1);
            using (var text = new CLIPTextModel(ConfigJson.Parse<CLIPTextConfig>(textJson, "text_encoder config")))
                text.SavePretrained(Path.Combine(folder, "text_encoder"));
            if (s.Family == "sdxl")
            {
                torch.manual_seed(5);
                using var text2 = new CLIPTextModelWithProjection(ConfigJson.Parse<CLIPTextConfig>(E2eConfigs.Text2(quick, root), "text_encoder_2 config"));
                text2.SavePretrained(Path.Combine(folder, "text_encoder_2"));
            }
            torch.manual_seed(2);
            using (var unet = UNet2DConditionModel.FromConfig(ConfigJson.Parse<UNet2DConditionModelConfig>(unetJson, "unet config")))
                unet.SavePretrained(Path.Combine(folder, "unet"));
            torch.manual_seed(3);
            using (var vae = AutoencoderKL.FromConfig(ConfigJson.Parse<AutoencoderKLConfig>(vaeJson, "vae config")))
                vae.SavePretrained(Path.Combine(folder, "vae"));
            torch.manual_seed(4);
            using (var taesd = AutoencoderTiny.FromConfig(ConfigJson.Parse<AutoencoderTinyConfig>(taesdJson, "taesd config")))
                taesd.SavePretrained(Path.Combine(folder, "taesd"));
        }
        foreach (var tokenizer in s.Family == "sdxl" ? new[] { "tokenizer", "tokenizer_2" } : ["tokenizer"])
        {
            Directory.CreateDirectory(Path.Combine(folder, tokenizer));
            string from = quick && s.Family == "sdxl" ? Path.Combine(root, "tests", "golden", "tiny-sdxl", tokenizer) : E2eConfigs.TokenizerFolder(quick, root);
            foreach (var f in Directory.GetFiles(from))
                File.Copy(f, Path.Combine(folder, tokenizer, Path.GetFileName(f)));
        }
        Directory.CreateDirectory(Path.Combine(folder, "scheduler"));
        File.WriteAllText(Path.Combine(folder, "scheduler", "scheduler_config.json"), s.SchedulerJson);
        string className = System.Text.Json.Nodes.JsonNode.Parse(s.SchedulerJson)!["_class_name"]!.GetValue<string>();
        File.WriteAllText(Path.Combine(folder, "model_index.json"), (s.Family == "sdxl" ? SdxlModelIndex : ModelIndex).Replace("SCHEDULER", className));
        File.WriteAllText(Path.Combine(folder, ".complete"), "");
        Console.WriteLine($"  wrote {folder}");
        return 0;
    }
}
