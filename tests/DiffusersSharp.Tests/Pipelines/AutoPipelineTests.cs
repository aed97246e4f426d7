using DiffusersSharp.Imaging;
using DiffusersSharp.Loading;
using DiffusersSharp.Models;
using DiffusersSharp.Pipelines;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Tests.Models;
using DiffusersSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Tests.Pipelines;

/// <summary>
/// AutoPipelineForText2Image / Image2Image / Inpainting (diffusers 0.25.1's auto_pipeline.py): the class each task picks
/// for each tiny golden folder, with and without a controlnet, gives the image of the class loaded directly; FromPipe
/// shares the component objects and gives a freshly loaded pipeline's image; the refusals name the class and the task.
/// </summary>
public class AutoPipelineTests
{
    private static string Sd => StableDiffusionPipelineTests.Model;
    private static string Sdxl => StableDiffusionXLPipelineTests.Base;
    private static string Refiner => StableDiffusionXLPipelineTests.Refiner;
    private static Image Init => Image.Load(Golden.Path("img2img-init.png"));
    private static Image Mask => Image.Load(Golden.Path("inpaint-mask.png"));
    private static Image Edges => Image.Load(Golden.Path("controlnet-edges.png"));
    private static ControlNetModel SdxlControlNet() => ControlNetModel.FromPretrained(Golden.Path("sdxl-controlnet-img2img", "controlnet"));

    /// <summary>Two steps of <paramref name="pipe"/> on fixed inputs (its class's arguments), as an array.</summary>
    private static Tensor Run(DiffusionPipeline pipe)
    {
        const string p = "a photo of a cat";
        const int n = 2;
        using var result = pipe switch
        {
            StableDiffusionPipeline x => x.Generate(p, "", height: 64, width: 64, numInferenceSteps: n, seed: 0, outputType: OutputType.Np),
            StableDiffusionImg2ImgPipeline x => x.Generate(p, Init, strength: 0.6, numInferenceSteps: n, seed: 0, outputType: OutputType.Np),
            StableDiffusionInpaintPipeline x => x.Generate(p, Init, Mask, strength: 0.75, numInferenceSteps: n, seed: 0, outputType: OutputType.Np),
            StableDiffusionControlNetPipeline x => x.Generate(p, [Edges], numInferenceSteps: n, seed: 0, outputType: OutputType.Np),
            StableDiffusionControlNetImg2ImgPipeline x => x.Generate(p, Init, [Edges], numInferenceSteps: n, seed: 0, outputType: OutputType.Np),
            StableDiffusionControlNetInpaintPipeline x => x.Generate(p, Init, Mask, [Edges], numInferenceSteps: n, seed: 0, outputType: OutputType.Np),
            StableDiffusionXLPipeline x => x.Generate(p, height: 64, width: 64, numInferenceSteps: n, seed: 0, outputType: OutputType.Np),
            StableDiffusionXLImg2ImgPipeline x => x.Generate(p, Init, strength: 0.6, numInferenceSteps: n, seed: 0, outputType: OutputType.Np),
            StableDiffusionXLInpaintPipeline x => x.Generate(p, Init, Mask, strength: 0.75, numInferenceSteps: n, seed: 0, outputType: OutputType.Np),
            StableDiffusionXLControlNetPipeline x => x.Generate(p, [Edges], numInferenceSteps: n, seed: 0, outputType: OutputType.Np),
            StableDiffusionXLControlNetImg2ImgPipeline x => x.Generate(p, Init, [Edges], numInferenceSteps: n, seed: 0, outputType: OutputType.Np),
            _ => throw new InvalidOperationException(pipe.ClassName),
        };
        return result.Array!.clone();
    }

    private static DiffusionPipeline Auto(AutoPipelineTask task, string folder, nn.Module? controlnet) => (task, controlnet) switch
    {
        (AutoPipelineTask.Text2Image, null) => AutoPipelineForText2Image.FromPretrained(folder),
        (AutoPipelineTask.Text2Image, _) => AutoPipelineForText2Image.FromPretrained(folder, controlnet),
        (AutoPipelineTask.Image2Image, null) => AutoPipelineForImage2Image.FromPretrained(folder),
        (AutoPipelineTask.Image2Image, _) => AutoPipelineForImage2Image.FromPretrained(folder, controlnet),
        (_, null) => AutoPipelineForInpainting.FromPretrained(folder),
        _ => AutoPipelineForInpainting.FromPretrained(folder, controlnet),
    };

    private static DiffusionPipeline Direct(string className, string folder, nn.Module? controlnet) => className switch
    {
        StableDiffusionPipeline.Name => StableDiffusionPipeline.FromPretrained(folder),
        StableDiffusionImg2ImgPipeline.Name => StableDiffusionImg2ImgPipeline.FromPretrained(folder),
        StableDiffusionInpaintPipeline.Name => StableDiffusionInpaintPipeline.FromPretrained(folder),
        StableDiffusionControlNetPipeline.Name => StableDiffusionControlNetPipeline.FromPretrained(folder, controlnet!),
        StableDiffusionControlNetImg2ImgPipeline.Name => StableDiffusionControlNetImg2ImgPipeline.FromPretrained(folder, controlnet!),
        StableDiffusionControlNetInpaintPipeline.Name => StableDiffusionControlNetInpaintPipeline.FromPretrained(folder, controlnet!),
        StableDiffusionXLPipeline.Name => StableDiffusionXLPipeline.FromPretrained(folder),
        StableDiffusionXLImg2ImgPipeline.Name => StableDiffusionXLImg2ImgPipeline.FromPretrained(folder),
        StableDiffusionXLInpaintPipeline.Name => StableDiffusionXLInpaintPipeline.FromPretrained(folder),
        StableDiffusionXLControlNetPipeline.Name => StableDiffusionXLControlNetPipeline.FromPretrained(folder, controlnet!),
        StableDiffusionXLControlNetImg2ImgPipeline.Name => StableDiffusionXLControlNetImg2ImgPipeline.FromPretrained(folder, controlnet!),
        _ => throw new InvalidOperationException(className),
    };

    [Theory]
    [InlineData(AutoPipelineTask.Text2Image, "sd", null, StableDiffusionPipeline.Name)]
    [InlineData(AutoPipelineTask.Image2Image, "sd", null, StableDiffusionImg2ImgPipeline.Name)]
    [InlineData(AutoPipelineTask.Inpainting, "sd", null, StableDiffusionInpaintPipeline.Name)]
    [InlineData(AutoPipelineTask.Inpainting, "sd-inpaint", null, StableDiffusionInpaintPipeline.Name)]
    [InlineData(AutoPipelineTask.Text2Image, "sd", "sd", StableDiffusionControlNetPipeline.Name)]
    [InlineData(AutoPipelineTask.Image2Image, "sd", "sd", StableDiffusionControlNetImg2ImgPipeline.Name)]
    [InlineData(AutoPipelineTask.Inpainting, "sd", "sd", StableDiffusionControlNetInpaintPipeline.Name)]
    [InlineData(AutoPipelineTask.Text2Image, "sdxl", null, StableDiffusionXLPipeline.Name)]
    [InlineData(AutoPipelineTask.Image2Image, "sdxl", null, StableDiffusionXLImg2ImgPipeline.Name)]
    [InlineData(AutoPipelineTask.Inpainting, "sdxl", null, StableDiffusionXLInpaintPipeline.Name)]
    [InlineData(AutoPipelineTask.Image2Image, "sdxl-refiner", null, StableDiffusionXLImg2ImgPipeline.Name)]
    [InlineData(AutoPipelineTask.Text2Image, "sdxl", "sdxl", StableDiffusionXLControlNetPipeline.Name)]
    [InlineData(AutoPipelineTask.Image2Image, "sdxl", "sdxl", StableDiffusionXLControlNetImg2ImgPipeline.Name)]
    public void EachTaskOfEachTinyFolderGivesItsClass(AutoPipelineTask task, string folderName, string? net, string expected)
    {
        using var inpaintFolder = folderName == "sd-inpaint" ? StableDiffusionImg2ImgInpaintTests.AssembleInpaintFolder() : null;
        string folder = folderName switch { "sd" => Sd, "sdxl" => Sdxl, "sdxl-refiner" => Refiner, _ => inpaintFolder!.Path };
        using var auto = Auto(task, folder, net switch { "sd" => ControlNetModelGoldenTests.LoadTiny(), "sdxl" => SdxlControlNet(), _ => null });
        Assert.Equal(expected, auto.ClassName);
        Assert.Equal(expected, auto.GetType().Name);
    }

    [Theory]
    [InlineData(AutoPipelineTask.Inpainting, "sd", StableDiffusionControlNetInpaintPipeline.Name)]
    [InlineData(AutoPipelineTask.Image2Image, "sdxl", StableDiffusionXLImg2ImgPipeline.Name)]
    public void TheAutoPipelineGivesTheImageOfTheClassLoadedDirectly(AutoPipelineTask task, string folderName, string expected)
    {
        string folder = folderName == "sd" ? Sd : Sdxl;
        nn.Module? NewNet() => expected.Contains("ControlNet") ? ControlNetModelGoldenTests.LoadTiny() : null;
        using var auto = Auto(task, folder, NewNet());
        Assert.Equal(expected, auto.ClassName);
        using var direct = Direct(expected, folder, NewNet());
        using var a = Run(auto);
        using var d = Run(direct);
        Assert.True(a.equal(d).all().item<bool>(), $"{expected}: the AutoPipeline's image differs from the direct class's");
    }

    [Fact]
    public void FromPretrainedKeepsTheControlnetItIsGivenAndLoadsEveryComponentWithTheOptions()
    {
        var net = ControlNetModelGoldenTests.LoadTiny();
        var logged = new List<string>();
        using var pipe = (StableDiffusionControlNetImg2ImgPipeline)AutoPipelineForImage2Image.FromPretrained(Sd, net,
            new LoadOptions { Dtype = ScalarType.BFloat16, Log = logged.Add });
        Assert.Same(net, pipe.Controlnet);
        Assert.Equal(ScalarType.BFloat16, pipe.Unet.parameters().First().dtype);
        Assert.Equal(ScalarType.Float32, pipe.TextEncoder.parameters().First().dtype);   // SD keeps its text encoder fp32 under bf16
    }

    [Fact]
    public void FromPipeSharesTheComponentsAndGivesAFreshlyLoadedPipelinesImage()
    {
        using var txt = StableDiffusionPipeline.FromPretrained(Sd);
        using var img2img = (StableDiffusionImg2ImgPipeline)AutoPipelineForImage2Image.FromPipe(txt);
        Assert.Same(txt.Unet, img2img.Unet);
        Assert.Same(txt.Vae, img2img.Vae);
        Assert.Same(txt.TextEncoder, img2img.TextEncoder);
        Assert.Same(txt.Tokenizer, img2img.Tokenizer);
        Assert.Same(txt.Scheduler, img2img.Scheduler);
        Assert.True(img2img.Borrows(txt.Unet));
        using var fresh = StableDiffusionImg2ImgPipeline.FromPretrained(Sd);
        using var a = Run(img2img);
        using var b = Run(fresh);
        Assert.True(a.equal(b).all().item<bool>());

        // the controlnet switch: the ControlNet variant of the task, the net the only component the new pipeline owns
        var net = ControlNetModelGoldenTests.LoadTiny();
        using var cn = (StableDiffusionControlNetPipeline)AutoPipelineForText2Image.FromPipe(img2img, new FromPipeOptions { Controlnet = net });
        Assert.Same(txt.Unet, cn.Unet);
        Assert.Same(net, cn.Controlnet);
        Assert.False(cn.Borrows(net));
        using var back = AutoPipelineForInpainting.FromPipe(cn, new FromPipeOptions { WithoutControlnet = true });
        Assert.Equal(StableDiffusionInpaintPipeline.Name, back.ClassName);
        Assert.DoesNotContain("controlnet", back.Components.Keys);
    }

    [Fact]
    public void DisposingAFromPipePipelineLeavesTheSharedComponentsAlive()
    {
        using var xl = StableDiffusionXLPipeline.FromPretrained(Sdxl);
        var scheduler = xl.Scheduler;
        var replacement = SchedulerFactory.FromConfig(EulerDiscreteScheduler.Name, scheduler.Config);
        var inpaint = (StableDiffusionXLInpaintPipeline)AutoPipelineForInpainting.FromPipe(xl,
            new FromPipeOptions { Components = new Dictionary<string, object> { ["scheduler"] = replacement }, ForceZerosForEmptyPrompt = false });
        Assert.Same(xl.Unet, inpaint.Unet);
        Assert.Same(replacement, inpaint.Scheduler);
        Assert.False(inpaint.ForceZerosForEmptyPrompt);
        Assert.True(xl.ForceZerosForEmptyPrompt);
        inpaint.Dispose();
        // the given scheduler was the new pipeline's, the shared models are still the base's
        Assert.Throws<ObjectDisposedException>(() => replacement.SetTimesteps(2));
        scheduler.SetTimesteps(2);
        using var fresh = StableDiffusionXLPipeline.FromPretrained(Sdxl);
        using var a = Run(xl);
        using var b = Run(fresh);
        Assert.True(a.equal(b).all().item<bool>());
    }

    [Fact]
    public void AScheduleThatTheNewClassCorrectsIsCopiedAndTheSharedOneKept()
    {
        using var inpaint = StableDiffusionInpaintPipeline.FromPretrained(Sd);
        using var loaded = inpaint.Scheduler;
        // clip_sample true: the inpaint class keeps it, StableDiffusionPipeline's constructor corrects it (as diffusers)
        string json = File.ReadAllText(Golden.Path("tiny-sd", "scheduler", "scheduler_config.json")).Replace("\"clip_sample\": false", "\"clip_sample\": true");
        using var shared = SchedulerFactory.FromJson(json, "test");
        inpaint.Scheduler = shared;
        var logged = new List<string>();
        inpaint.Log = logged.Add;
        var txt = (StableDiffusionPipeline)AutoPipelineForText2Image.FromPipe(inpaint);
        Assert.Same(inpaint.Unet, txt.Unet);
        Assert.NotSame(shared, txt.Scheduler);
        var corrected = txt.Scheduler;
        Assert.Equal(["the scheduler config has clip_sample true; it should be false: using false, as diffusers does"], logged);
        txt.Dispose();
        Assert.Throws<ObjectDisposedException>(() => corrected.SetTimesteps(2));   // the copy was the new pipeline's
        shared.SetTimesteps(2);   // the shared one is still the inpaint pipeline's
    }

    /// <summary>
    /// The lcm row: an LCM folder (tests/golden/lcm-pipeline's UNet with tiny-sd's other components) gives
    /// LatentConsistencyModelImg2ImgPipeline for image to image, and FromPipe of the text-to-image pipeline shares its UNet
    /// and scheduler.
    /// </summary>
    [Fact]
    public void AnLcmFolderGivesTheLcmImageToImagePipelineAndFromPipeSharesItsComponents()
    {
        using var dir = LatentConsistencyModelPipelineTests.Folder();
        using var img2img = AutoPipelineForImage2Image.FromPretrained(dir.Path);
        Assert.IsType<LatentConsistencyModelImg2ImgPipeline>(img2img);
        using var txt2img = AutoPipelineForText2Image.FromPretrained(dir.Path);
        var lcm = Assert.IsType<LatentConsistencyModelPipeline>(txt2img);
        using var fromPipe = AutoPipelineForImage2Image.FromPipe(lcm);
        var shared = Assert.IsType<LatentConsistencyModelImg2ImgPipeline>(fromPipe);
        Assert.Same(lcm.Unet, shared.Unet);
        Assert.Same(lcm.Scheduler, shared.Scheduler);
    }

    [Fact]
    public void UnknownClassesTasksAFamilyLacksAndFamiliesNotHereAreRefusedByName()
    {
        using var dir = new TempDir();
        string index = dir.File("model_index.json");
        void Folder(string cls) => File.WriteAllText(index, $$"""{"_class_name": "{{cls}}"}""");

        Folder("StableDiffusionUpscalePipeline");
        var e = Assert.Throws<ConfigException>(() => AutoPipelineForImage2Image.FromPretrained(dir.Path));
        Assert.Equal($"{index}: AutoPipelineForImage2Image: no image-to-image pipeline is linked to StableDiffusionUpscalePipeline: " +
                     "diffusers 0.25.1's AutoPipeline tables do not name that class", e.Message);
        Assert.Equal("_class_name", e.Key);

        Folder("Kandinsky3Pipeline");
        e = Assert.Throws<ConfigException>(() => AutoPipelineForInpainting.FromPretrained(dir.Path));
        Assert.Equal($"{index}: AutoPipelineForInpainting: the kandinsky3 family of Kandinsky3Pipeline has no inpainting pipeline " +
                     "in diffusers 0.25.1's AutoPipeline tables", e.Message);

        Folder("KandinskyV22Pipeline");   // a decoder pipeline: found through diffusers' decoder tables
        e = Assert.Throws<ConfigException>(() => AutoPipelineForText2Image.FromPretrained(dir.Path));
        Assert.Equal($"{index}: AutoPipelineForText2Image: the text-to-image pipeline of the kandinsky22 family of KandinskyV22Pipeline " +
                     "is KandinskyV22CombinedPipeline, which DiffusersSharp does not have", e.Message);

        Folder("LatentConsistencyModelPipeline");
        e = Assert.Throws<ConfigException>(() => AutoPipelineForInpainting.FromPretrained(dir.Path));
        Assert.Equal($"{index}: AutoPipelineForInpainting: the lcm family of LatentConsistencyModelPipeline has no inpainting pipeline " +
                     "in diffusers 0.25.1's AutoPipeline tables", e.Message);

        Folder("StableDiffusionXLPipeline");   // diffusers 0.25.1 maps no SDXL ControlNet inpainting class
        e = Assert.Throws<ConfigException>(() => AutoPipelineForInpainting.FromPretrained(dir.Path, ControlNetModelGoldenTests.LoadTiny()));
        Assert.Equal($"{index}: AutoPipelineForInpainting: the stable-diffusion-xl-controlnet family of StableDiffusionXLControlNetPipeline " +
                     "(StableDiffusionXLPipeline with a controlnet) has no inpainting pipeline in diffusers 0.25.1's AutoPipeline tables", e.Message);
    }

    [Fact]
    public void FromPipeRefusesWhatTheTaskClassCannotBeBuiltFrom()
    {
        using var refiner = StableDiffusionXLImg2ImgPipeline.FromPretrained(Refiner);
        var e = Assert.Throws<DiffusersException>(() => AutoPipelineForText2Image.FromPipe(refiner));
        Assert.Equal("AutoPipelineForText2Image.FromPipe: StableDiffusionXLPipeline needs the 'text_encoder' component, which " +
                     "StableDiffusionXLImg2ImgPipeline does not have; pass one in FromPipeOptions.Components", e.Message);

        using var sd = StableDiffusionPipeline.FromPretrained(Sd);
        e = Assert.Throws<DiffusersException>(() => AutoPipelineForInpainting.FromPipe(sd,
            new FromPipeOptions { Components = new Dictionary<string, object> { ["text_encoder_2"] = sd.TextEncoder } }));
        Assert.Equal("AutoPipelineForInpainting.FromPipe: FromPipeOptions.Components names 'text_encoder_2', which StableDiffusionInpaintPipeline " +
                     "does not take (it takes vae, text_encoder, tokenizer, unet, scheduler, image_encoder, feature_extractor)", e.Message);

        e = Assert.Throws<DiffusersException>(() => AutoPipelineForText2Image.FromPipe(sd, new FromPipeOptions { ForceZerosForEmptyPrompt = true }));
        Assert.Equal("AutoPipelineForText2Image.FromPipe: StableDiffusionPipeline has no 'force_zeros_for_empty_prompt' option", e.Message);

        using var inpaint = AutoPipelineForInpainting.FromPipe(refiner);
        e = Assert.Throws<DiffusersException>(() => AutoPipelineForInpainting.FromPipe(inpaint, new FromPipeOptions { Controlnet = sd.Unet }));
        Assert.Equal("AutoPipelineForInpainting.FromPipe: no inpainting pipeline is linked to StableDiffusionXLControlNetInpaintPipeline " +
                     "(the ControlNet variant of StableDiffusionXLInpaintPipeline): diffusers 0.25.1's AutoPipeline tables do not name that class", e.Message);
        Assert.True(((StableDiffusionXLInpaintPipeline)inpaint).RequiresAestheticsScore);   // the refiner's option carried over
    }
}
