namespace DiffusersSharp.Pipelines;

/// <summary>
/// The outdated scheduler-config values a pipeline class's constructor corrects, each with a warning, as its diffusers
/// class's <c>__init__</c> does. Only at construction: a scheduler assigned later is used as given (diffusers'
/// <c>pipe.scheduler = …</c>).
/// </summary>
[Flags]
public enum SchedulerConfigFixes
{
    /// <summary>None (diffusers' ControlNet pipelines).</summary>
    None = 0,

    /// <summary><c>steps_offset</c> other than 1 becomes 1 (Stable Diffusion text to image, image to image, inpainting).</summary>
    StepsOffset = 1,

    /// <summary><c>clip_sample: true</c> becomes false (Stable Diffusion text to image and image to image).</summary>
    ClipSample = 2,

    /// <summary><c>skip_prk_steps: false</c> becomes true (Stable Diffusion inpainting).</summary>
    SkipPrkSteps = 4,
}
