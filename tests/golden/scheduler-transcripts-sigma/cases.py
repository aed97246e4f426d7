"""The new cases: configs of real checkpoints and the step kwargs users pass, which golden B lacks."""
SD = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}
SD1 = dict(SD, steps_offset=1)
N6 = (1, 2, 4, 7, 10, 25, 33, 50)
NO = (4, 7, 10, 25, 33, 50)  # 7 and 33 do not divide num_train_timesteps: leading/trailing rounding
NL = (1, 2, 3, 4, 7, 8, 25)  # LCM
IF_I = dict(beta_schedule="squaredcos_cap_v2", variance_type="learned_range", thresholding=True,
            dynamic_thresholding_ratio=0.95, sample_max_value=1.5, clip_sample=True)

CASES = [
    # ---- EulerDiscreteScheduler
    dict(name="euler-sd2-v-linspace", cls="EulerDiscreteScheduler", kwargs=dict(SD1, prediction_type="v_prediction"), seed=20),
    dict(name="euler-sdturbo-trailing", cls="EulerDiscreteScheduler", kwargs=dict(SD1, timestep_spacing="trailing"), seed=21, ns=N6, loop_n=4),
    dict(name="euler-trailing-zsnr-v", cls="EulerDiscreteScheduler",
         kwargs=dict(SD1, timestep_spacing="trailing", rescale_betas_zero_snr=True, prediction_type="v_prediction"), seed=22),
    dict(name="euler-loglinear", cls="EulerDiscreteScheduler", kwargs=dict(SD1, interpolation_type="log_linear"), seed=20),
    # Stable Video Diffusion's scheduler config (karras + continuous timesteps + v_prediction + sigma_min/max)
    dict(name="euler-svd-karras-continuous-v", cls="EulerDiscreteScheduler",
         kwargs=dict(SD, prediction_type="v_prediction", timestep_spacing="leading", timestep_type="continuous",
                     use_karras_sigmas=True, sigma_min=0.002, sigma_max=700.0, interpolation_type="linear", steps_offset=0), seed=30),
    dict(name="euler-churn", cls="EulerDiscreteScheduler", kwargs=dict(SD1),
         step_kwargs={"s_churn": 1.0, "s_tmin": 1.0, "s_tmax": 10.0, "s_noise": 1.003}, seed=21),
    dict(name="euler-karras-leading", cls="EulerDiscreteScheduler", kwargs=dict(SD1, use_karras_sigmas=True, timestep_spacing="leading"), seed=22),
    dict(name="euler-sample-trailing-7steps", cls="EulerDiscreteScheduler", kwargs=dict(SD1, prediction_type="sample", timestep_spacing="trailing"),
         seed=22, loop_n=7),
    # ---- EulerAncestralDiscreteScheduler
    dict(name="eulera-sdxlturbo-trailing", cls="EulerAncestralDiscreteScheduler", kwargs=dict(SD1, timestep_spacing="trailing"), seed=30, ns=N6, loop_n=4),
    dict(name="eulera-sdxlturbo-1step", cls="EulerAncestralDiscreteScheduler", kwargs=dict(SD1, timestep_spacing="trailing"), seed=50, ns=N6, loop_n=1),
    dict(name="eulera-v-leading", cls="EulerAncestralDiscreteScheduler", kwargs=dict(SD1, prediction_type="v_prediction", timestep_spacing="leading"), seed=1),
    dict(name="eulera-trailing-zsnr-v", cls="EulerAncestralDiscreteScheduler",
         kwargs=dict(SD1, timestep_spacing="trailing", rescale_betas_zero_snr=True, prediction_type="v_prediction"), seed=3),
    dict(name="eulera-leading-zsnr-v", cls="EulerAncestralDiscreteScheduler",
         kwargs=dict(SD1, timestep_spacing="leading", rescale_betas_zero_snr=True, prediction_type="v_prediction"), seed=10),
    # ---- HeunDiscreteScheduler
    dict(name="heun-karras", cls="HeunDiscreteScheduler", kwargs=dict(SD1, use_karras_sigmas=True)),
    dict(name="heun-v-leading", cls="HeunDiscreteScheduler", kwargs=dict(SD1, prediction_type="v_prediction", timestep_spacing="leading")),
    # Shap-E's scheduler config: exp betas, 1024 train steps, karras, sample prediction, clipping
    dict(name="heun-shap-e", cls="HeunDiscreteScheduler",
         kwargs=dict(beta_schedule="exp", num_train_timesteps=1024, prediction_type="sample", use_karras_sigmas=True,
                     clip_sample=True, clip_sample_range=1.0)),
    dict(name="heun-trailing-v", cls="HeunDiscreteScheduler", kwargs=dict(SD1, prediction_type="v_prediction", timestep_spacing="trailing")),
    dict(name="heun-sample-clip", cls="HeunDiscreteScheduler", kwargs=dict(prediction_type="sample", clip_sample=True, clip_sample_range=2.0)),
    # ---- LMSDiscreteScheduler
    dict(name="lms-karras", cls="LMSDiscreteScheduler", kwargs=dict(SD1, use_karras_sigmas=True)),
    dict(name="lms-order2-v", cls="LMSDiscreteScheduler", kwargs=dict(SD1, prediction_type="v_prediction"), step_kwargs={"order": 2}),
    # ---- KDPM2DiscreteScheduler / KDPM2AncestralDiscreteScheduler (no golden B case to validate against)
    dict(name="kdpm2-sd", cls="KDPM2DiscreteScheduler", kwargs=dict(SD1)),
    dict(name="kdpm2-sd-karras", cls="KDPM2DiscreteScheduler", kwargs=dict(SD1, use_karras_sigmas=True)),
    dict(name="kdpm2-v-leading", cls="KDPM2DiscreteScheduler", kwargs=dict(SD1, prediction_type="v_prediction", timestep_spacing="leading")),
    # one noise draw per call (9 calls for 5 steps): seeds with 10 recorded draws
    dict(name="kdpm2a-sd-5steps", cls="KDPM2AncestralDiscreteScheduler", kwargs=dict(SD1), seed=20, loop_n=5),
    dict(name="kdpm2a-sd-karras-5steps", cls="KDPM2AncestralDiscreteScheduler", kwargs=dict(SD1, use_karras_sigmas=True), seed=21, loop_n=5),
    dict(name="lms-karras-trailing", cls="LMSDiscreteScheduler", kwargs=dict(SD1, use_karras_sigmas=True, timestep_spacing="trailing")),
    dict(name="lms-sample-leading-7steps", cls="LMSDiscreteScheduler", kwargs=dict(SD1, prediction_type="sample", timestep_spacing="leading"), loop_n=7),
    dict(name="kdpm2-karras-trailing-v", cls="KDPM2DiscreteScheduler",
         kwargs=dict(SD1, use_karras_sigmas=True, timestep_spacing="trailing", prediction_type="v_prediction")),
    dict(name="kdpm2a-v-leading-5steps", cls="KDPM2AncestralDiscreteScheduler", kwargs=dict(SD1, prediction_type="v_prediction", timestep_spacing="leading"),
         seed=22, loop_n=5),
    # ---- DDIMScheduler
    dict(name="ddim-trailing-v-zsnr", cls="DDIMScheduler",
         kwargs=dict(SD1, clip_sample=False, set_alpha_to_one=False, timestep_spacing="trailing", prediction_type="v_prediction",
                     rescale_betas_zero_snr=True), step_kwargs={"eta": 0.0}),
    dict(name="ddim-thresholding", cls="DDIMScheduler",
         kwargs=dict(thresholding=True, dynamic_thresholding_ratio=0.9, sample_max_value=8.0), step_kwargs={"eta": 0.0}),
    dict(name="ddim-eta05-clipped-output", cls="DDIMScheduler", kwargs=dict(), step_kwargs={"eta": 0.5, "use_clipped_model_output": True}, seed=10),
    dict(name="ddim-clip05-alpha1-linspace", cls="DDIMScheduler",
         kwargs=dict(SD, clip_sample=True, clip_sample_range=0.5, set_alpha_to_one=True, timestep_spacing="linspace"), step_kwargs={"eta": 0.0}),
    dict(name="ddim-sample-clip-trailing-eta03-7steps", cls="DDIMScheduler",
         kwargs=dict(prediction_type="sample", clip_sample=True, timestep_spacing="trailing"), step_kwargs={"eta": 0.3}, seed=1, loop_n=7),
    # ---- DDPMScheduler
    # DeepFloyd IF stage I: squaredcos, learned_range, dynamic thresholding
    dict(name="ddpm-if-thresholding-learnedrange", cls="DDPMScheduler", kwargs=IF_I, seed=3),
    # IF pipelines pass explicit timestep lists (set_timesteps(timesteps=...)); 10 of them here (9 noise draws)
    dict(name="ddpm-if-custom-timesteps", cls="DDPMScheduler", kwargs=IF_I, seed=0,
         custom=(999, 800, 799, 600, 599, 500, 400, 399, 377, 0)),
    dict(name="ddpm-trailing-zsnr-v", cls="DDPMScheduler",
         kwargs=dict(SD, timestep_spacing="trailing", rescale_betas_zero_snr=True, prediction_type="v_prediction", clip_sample=False), seed=1),
    dict(name="ddpm-v-learnedrange-linspace", cls="DDPMScheduler",
         kwargs=dict(prediction_type="v_prediction", variance_type="learned_range", timestep_spacing="linspace", clip_sample=False), seed=0),
    # ---- PNDMScheduler
    dict(name="pndm-v-trailing-skipprk", cls="PNDMScheduler",
         kwargs=dict(SD1, skip_prk_steps=True, prediction_type="v_prediction", timestep_spacing="trailing")),
    dict(name="pndm-v-prk-linspace", cls="PNDMScheduler", kwargs=dict(prediction_type="v_prediction", timestep_spacing="linspace", set_alpha_to_one=True)),
    dict(name="pndm-prk-leading-offset1-7steps", cls="PNDMScheduler", kwargs=dict(SD1), loop_n=7),
    # ---- LCMScheduler
    dict(name="lcm-orig100-8steps", cls="LCMScheduler", kwargs=dict(original_inference_steps=100), seed=20, loop_n=8, ns=NL),
    dict(name="lcm-v-zsnr-2steps", cls="LCMScheduler", kwargs=dict(prediction_type="v_prediction", rescale_betas_zero_snr=True), seed=21, loop_n=2, ns=NL),
    dict(name="lcm-custom-timesteps", cls="LCMScheduler", kwargs=dict(), seed=50, custom=(999, 759, 499, 259), ns=NL),
    dict(name="lcm-1step-scaling5-alpha0", cls="LCMScheduler", kwargs=dict(timestep_scaling=5.0, set_alpha_to_one=False), seed=22, loop_n=1, ns=NL),
]

for _c in CASES:
    _c.setdefault("ns", NO)
